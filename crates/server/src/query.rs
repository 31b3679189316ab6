//! Query strings the server and the CLI write: one percent-encoder for
//! values (PromQL queries, audit filters).

/// Percent-encodes a query value: everything but the unreserved characters
/// of RFC 3986 (letters, digits, `-`, `_`, `.`, `~`).
pub fn encode_value(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::query::encode_value;

    #[test]
    fn values_keep_only_unreserved_characters() {
        assert_eq!(encode_value("deploy bot&x=1"), "deploy%20bot%26x%3D1");
        assert_eq!(encode_value("auto_rollback"), "auto_rollback");
        assert_eq!(
            encode_value(r#"max(q{deployment="canary"})"#),
            "max%28q%7Bdeployment%3D%22canary%22%7D%29"
        );
        assert_eq!(encode_value("é"), "%C3%A9");
    }
}
