//! Numbers and times as people read them: "2 days ago", "1.4 GB". Pure
//! functions; the caller supplies `now`.

use jiff::{SignedDuration, Timestamp};

/// `s` with its first letter in upper case: a message begun as a sentence.
pub fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// How long before `now` `then` was, in the largest whole unit: "just now",
/// "5 minutes ago", "2 days ago". A time after `now` (a clock set wrong) says
/// "in the future" rather than a negative age.
pub fn ago(now: Timestamp, then: Timestamp) -> String {
    let elapsed = now.duration_since(then);
    if elapsed < SignedDuration::ZERO {
        return if elapsed > -SignedDuration::from_mins(1) {
            "just now".to_owned()
        } else {
            "in the future".to_owned()
        };
    }
    let secs = elapsed.as_secs();
    let (n, unit) = match secs {
        s if s < 60 => return "just now".to_owned(),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 86_400 * 60 => (s / 86_400, "day"),
        s if s < 86_400 * 730 => (s / (86_400 * 30), "month"),
        s => (s / (86_400 * 365), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// A length of time in the largest sensible unit: "45 s", "3 min", "2 h".
pub fn duration(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

/// A number with thousands separated: "10,000,000".
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count with its noun, plural when it is not one: "1 candidate",
/// "1,200 candidates".
pub fn count_noun(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", count(n), if n == 1 { "" } else { "s" })
}

/// A system error as a person reads it: the system's own words without
/// Rust's " (os error 28)" after them.
pub fn io_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

/// A byte count in decimal units, as Finder shows sizes: "0 B", "950 KB",
/// "1.4 GB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(10_000_000), "10,000,000");
        assert_eq!(count_noun(1, "candidate"), "1 candidate");
        assert_eq!(count_noun(1200, "candidate"), "1,200 candidates");
    }

    #[test]
    fn system_errors_lose_rusts_number() {
        let full = std::io::Error::from_raw_os_error(28);
        assert_eq!(io_error(&full), "No space left on device");
        let own = std::io::Error::other("a message (of ours)");
        assert_eq!(io_error(&own), "a message (of ours)");
    }

    #[test]
    fn ages() {
        let now: Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        let check = |secs: i64, expected: &str| {
            assert_eq!(
                ago(now, now - SignedDuration::from_secs(secs)),
                expected,
                "{secs}s"
            );
        };
        check(0, "just now");
        check(59, "just now");
        check(60, "1 minute ago");
        check(7200, "2 hours ago");
        check(86_400 * 2 + 5, "2 days ago");
        check(86_400 * 90, "3 months ago");
        check(86_400 * 365 * 3, "3 years ago");
        check(-30, "just now");
        check(-3600, "in the future");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(SignedDuration::from_secs(6)), "6 s");
        assert_eq!(duration(SignedDuration::from_secs(600)), "10 min");
        assert_eq!(duration(SignedDuration::from_hours(5)), "5 h");
        assert_eq!(duration(SignedDuration::from_secs(-5)), "0 s");
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_000), "1.0 KB");
        assert_eq!(bytes(950_000), "950 KB");
        assert_eq!(bytes(1_400_000_000), "1.4 GB");
        assert_eq!(bytes(u64::MAX), "18447 PB");
    }
}
