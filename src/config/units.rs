//! Parsing of the human units the config accepts: durations ("30m", "2h", "1d") and sizes ("50M").

use std::time::Duration;

/// Parses "90", "90s", "30m", "2h", "1d", "1w" and sums like "1h30m". A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    // in milliseconds, so "500ms" and "1m30s" both read
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let mult: u64 = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            's' => 1000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            _ => {
                return Err(format!(
                    "bad duration {text:?}: unknown unit {c:?} (use ms, s, m, h, d, w)"
                ))
            }
        };
        if digits.is_empty() {
            return Err(format!("bad duration {text:?}: unit {c:?} without a number"));
        }
        let n: u64 = digits.parse().map_err(|_| format!("bad duration {text:?}"))?;
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("bad duration {text:?}: too large"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("bad duration {text:?}: number {digits} without a unit"));
    }
    Ok(Duration::from_millis(total))
}

/// Parses a byte count or rate: "0", "50K", "50M", "1.5G", "2T", "20B" (binary multiples).
///
/// A number needs a unit: a bare `20` read as bytes was a footgun (`bwlimit = 20` throttled a
/// pair to 20 bytes/s), and no floor can tell "20 bytes" from "forgot the M". "0" alone means none.
/// A value that rounds to 0 bytes or does not fit 64 bits is refused rather than silently becoming
/// "unlimited" or saturating.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        None => (t, None),
        Some((i, _)) => {
            let unit = t[i..].trim_end_matches(['B', 'b', 'i']).to_ascii_uppercase();
            let m: u64 = match unit.as_str() {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("bad size {text:?}: unknown unit (use B, K, M, G, T)")),
            };
            (&t[..i], Some(m))
        }
    };
    let num = num.trim();
    if num.starts_with('-') {
        return Err(format!("bad size {text:?}: must not be negative"));
    }
    let value: f64 = match num.parse() {
        Ok(v) if num.bytes().all(|b| b.is_ascii_digit() || b == b'.') => v,
        _ => return Err(format!("bad size {text:?}: not a number")),
    };
    if value == 0.0 {
        return Ok(0);
    }
    let Some(mult) = mult else {
        return Err(format!(
            "bad size {text:?}: a number needs a unit: write \"{num}M\" for MiB, \"{num}K\" for KiB, \"{num}B\" for bytes (\"0\" alone means none)"
        ));
    };
    let bytes = value * mult as f64;
    if bytes < 1.0 {
        return Err(format!(
            "bad size {text:?}: rounds to 0 bytes (write \"0\" for none, or at least \"1B\")"
        ));
    }
    // 2^64 is the first value a u64 cannot hold; `as u64` would saturate silently
    if bytes >= 18_446_744_073_709_551_616.0 {
        return Err(format!("bad size {text:?}: too large (at most 16 EiB)"));
    }
    Ok(bytes as u64)
}

/// Formats a duration the way status prints lag: "45s", "12m", "3h05m", "2d04h".
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 && d.subsec_millis() > 0 {
        format!("{}ms", d.subsec_millis())
    } else if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{:02}h", s / 86400, (s % 86400) / 3600)
    }
}

/// Formats Unix seconds as "2026-11-21 12:00:00Z" (UTC), or "?" when out of range.
pub fn format_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "?".into())
}

/// Formats bytes with binary units: "512 B", "1.5 MiB".
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_read_and_print() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2s250ms").unwrap(), Duration::from_millis(2250));
        assert!(parse_duration("ms").is_err());
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("30m").unwrap().as_secs(), 1800);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("1d").unwrap().as_secs(), 86400);
        assert!(parse_duration("2x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5m3").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("0.0").unwrap(), 0);
        assert_eq!(parse_size("0M").unwrap(), 0);
        assert_eq!(parse_size("50M").unwrap(), 50 << 20);
        assert_eq!(parse_size("1.5K").unwrap(), 1536);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("20B").unwrap(), 20);
        assert_eq!(parse_size("15T").unwrap(), 15 << 40);
        assert!(parse_size("5Q").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("-1M").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("20").unwrap_err().contains("\"20M\""));
        assert!(parse_size("0.0001").unwrap_err().contains("needs a unit"));
        assert!(parse_size("0.0001K").unwrap_err().contains("rounds to 0"));
        assert!(parse_size("0.5B").unwrap_err().contains("rounds to 0"));
        assert!(parse_size("99999999999T").unwrap_err().contains("too large"));
        assert!(parse_size("16777216T").unwrap_err().contains("too large"));
        assert!(parse_size("16777215T").is_ok());
        assert!(parse_size("1e3M").is_err());
        assert!(parse_size("+5M").is_err());
        assert!(parse_size("NaNM").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::from_secs(3900)), "1h05m");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(12), "12 B");
    }
}
