//! Numbers and durations in words, one way for the server's reasons, the
//! CLI and the console alike, so a wait reads the same wherever it shows.

/// `1,234,567`: digits grouped by thousands.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `24 h`, `3 h 12 min`, `5 min`, `90 s`, `500 ms`: two units at most,
/// rounded down, so a countdown never claims more time than is left.
/// Seconds up to two minutes, so a short wait is not rounded to "1 min".
pub fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    let (hours, minutes) = (secs / 3600, secs / 60 % 60);
    match secs {
        0 => format!("{ms} ms"),
        1..=119 => format!("{secs} s"),
        120..=3599 => format!("{} min", secs / 60),
        _ if minutes == 0 => format!("{hours} h"),
        _ => format!("{hours} h {minutes} min"),
    }
}

#[cfg(test)]
mod tests {
    use crate::words::{duration, thousands};

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_read_in_two_units_at_most_rounded_down() {
        for (ms, words) in [
            (0, "0 ms"),
            (500, "500 ms"),
            (1_000, "1 s"),
            (45_000, "45 s"),
            (90_000, "90 s"),
            (119_999, "119 s"),
            (120_000, "2 min"),
            (3_599_000, "59 min"),
            (3_600_000, "1 h"),
            (3_900_000, "1 h 5 min"),
            (86_400_000, "24 h"),
            (83_460_000, "23 h 11 min"),
        ] {
            assert_eq!(duration(ms), words, "{ms} ms");
        }
    }
}
