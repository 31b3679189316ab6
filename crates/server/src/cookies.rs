//! Reading one cookie from a request's `Cookie` headers; used by the proxy
//! (stickiness) and the admin API (the session).

use hyper::header::{self, HeaderMap};

/// The value of the cookie `name`, trimmed; `None` when it is absent or empty.
pub fn value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use hyper::header::{HeaderMap, HeaderValue};

    use crate::cookies::value;

    #[test]
    fn finds_a_cookie_among_several_headers_and_pairs() {
        let mut headers = HeaderMap::new();
        headers.append(
            "cookie",
            HeaderValue::from_static("a=1; canary_session= s3cret "),
        );
        headers.append("cookie", HeaderValue::from_static("b=2"));
        assert_eq!(value(&headers, "canary_session"), Some("s3cret"));
        assert_eq!(value(&headers, "b"), Some("2"));
        assert_eq!(value(&headers, "canary"), None, "no prefix matches");
        headers.append("cookie", HeaderValue::from_static("empty="));
        assert_eq!(value(&headers, "empty"), None);
    }
}
