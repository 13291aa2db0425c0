//! Durations on the command line: a number with a unit (`500ms`, `2s`, `1.5m`, `24h`, `3d`),
//! or `0`. A bare number other than zero is refused with a hint, because nothing says whether
//! `30` means 30 ms or 30 s; the exception is the lock timeout, whose bare number is milliseconds
//! as pgroll's `PGROLL_LOCK_TIMEOUT` is, so that pgroll's settings keep working.

use std::time::Duration;

/// A duration where zero makes sense (`--backfill-batch-delay 0`, `--min-age 0`, `--sample 0`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse(s, Bare::Refused)
}

/// A duration that must be longer than zero (an interval between redraws, a batch's target).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    positive(s, parse(s, Bare::Refused)?)
}

/// The lock timeout: longer than zero (PostgreSQL's `lock_timeout = 0` would wait forever, which
/// is what tandem exists to avoid), and a bare number is milliseconds, as pgroll's is.
pub fn parse_lock_timeout(s: &str) -> Result<Duration, String> {
    positive(s, parse(s, Bare::Milliseconds)?)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bare {
    Refused,
    Milliseconds,
}

fn positive(s: &str, d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        return Err(format!(
            "{:?}: must be longer than zero, e.g. 500ms or 2s",
            s.trim()
        ));
    }
    Ok(d)
}

fn parse(s: &str, bare: Bare) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = (&s[..split], s[split..].trim());
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 500ms, 2s, 5m, 24h or 3d"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("{s:?} is not a duration such as 500ms or 2s"));
    }
    let ms_per_unit = match unit {
        "" if n == 0.0 => 0.0,
        "" if bare == Bare::Milliseconds => 1.0,
        "" => {
            return Err(format!(
                "{s:?} has no unit: write {num}ms, {num}s, {num}m, {num}h or {num}d"
            ))
        }
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
            ))
        }
    };
    let ms = n * ms_per_unit;
    if ms > u64::MAX as f64 / 2.0 {
        return Err(format!("{s:?} is too long"));
    }
    Ok(Duration::from_micros((ms * 1000.0).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_zero_and_days() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("150ms"), Ok(Duration::from_millis(150)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86_400)));
    }

    #[test]
    fn a_bare_number_needs_a_unit_except_for_the_lock_timeout() {
        let e = parse_duration("30").unwrap_err();
        assert!(e.contains("has no unit: write 30ms, 30s"), "{e}");
        assert_eq!(parse_lock_timeout("500"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_lock_timeout("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn zero_is_refused_where_it_makes_no_sense() {
        assert!(parse_positive_duration("0")
            .unwrap_err()
            .contains("longer than zero"));
        assert!(parse_lock_timeout("0")
            .unwrap_err()
            .contains("longer than zero"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").is_err());
    }
}
