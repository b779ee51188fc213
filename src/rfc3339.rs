//! RFC 3339 timestamps as nanoseconds since the Unix epoch ([`Nanos`]),
//! for the report, token expiry and challenge links, without a date crate: the log's `timestamp` field and `--since`/`--until`
//! need only parsing and the UTC day, and the proleptic Gregorian
//! arithmetic below (Howard Hinnant's `days_from_civil`) is exact for every
//! year 0–9999. Fractions of a second are kept: the log writes
//! microseconds, and `--since …46.863Z` must not take in a line of
//! `…46.100Z`.

/// Nanoseconds since 1970-01-01T00:00:00Z (i128: years 0–9999 and more).
pub(crate) type Nanos = i128;
/// One second, one day in [`Nanos`].
pub(crate) const SECOND: Nanos = 1_000_000_000;
pub const DAY: Nanos = 86_400 * SECOND;

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn number(s: &str, digits: usize) -> Option<i64> {
    (s.len() == digits && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD` as the epoch second of its start (UTC).
pub(crate) fn parse_date(s: &str) -> Option<i64> {
    let (y, rest) = s.split_once('-')?;
    let (m, d) = rest.split_once('-')?;
    let (y, m, d) = (number(y, 4)?, number(m, 2)?, number(d, 2)?);
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days_in_month)
        .contains(&d)
        .then(|| days_from_civil(y, m, d) * 86_400)
}

/// An RFC 3339 date-time (`2026-11-23T17:45:06.123456Z`, `…+01:00`; a
/// space for the `T` is accepted), fractions of a second kept to the
/// nanosecond; digits beyond that round up, so that a bound never takes in
/// a time before it.
pub(crate) fn parse_datetime(s: &str) -> Option<Nanos> {
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let day = parse_date(date)?;
    let (clock, offset) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        let (oh, om) = (number(oh, 2)?, number(om, 2)?);
        if oh > 23 || om > 59 {
            return None;
        }
        (clock, sign * (oh * 3600 + om * 60))
    };
    let (clock, fraction) = match clock.split_once('.') {
        Some((whole, frac)) => (whole, fraction(frac)?),
        None => (clock, 0),
    };
    let mut parts = clock.split(':');
    let h = number(parts.next()?, 2)?;
    let m = number(parts.next()?, 2)?;
    let sec = number(parts.next()?, 2)?;
    if parts.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let secs = day + h * 3600 + m * 60 + sec - offset;
    Some(Nanos::from(secs) * SECOND + fraction)
}

/// The digits after the decimal point as nanoseconds (rounded up past
/// the ninth digit); `None` unless one or more digits.
fn fraction(digits: &str) -> Option<Nanos> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (ns, rest) = digits.split_at(digits.len().min(9));
    let ns: Nanos = format!("{ns:0<9}").parse().ok()?;
    Some(ns + Nanos::from(rest.bytes().any(|b| b != b'0')))
}

/// `--since`/`--until`: a date (its start; for `until`, the start of the
/// next day, so the named day is included) or a date-time.
pub(crate) fn parse_bound(s: &str, until: bool) -> Option<Nanos> {
    match parse_date(s) {
        Some(start) if until => Some(Nanos::from(start + 86_400) * SECOND),
        Some(start) => Some(Nanos::from(start) * SECOND),
        None => parse_datetime(s),
    }
}

/// The UTC day number (days since the epoch) of a time.
pub(crate) fn day_number(t: Nanos) -> i64 {
    i64::try_from(t.div_euclid(DAY)).unwrap_or(i64::MAX)
}

/// The UTC day of an epoch second, `YYYY-MM-DD`.
pub fn day(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A time as `YYYY-MM-DDTHH:MM:SSZ`, with its fraction of a second when it
/// has one (`…:06.8635Z`).
pub(crate) fn datetime(t: Nanos) -> String {
    let secs = i64::try_from(t.div_euclid(SECOND)).unwrap_or(i64::MAX);
    let ns = t.rem_euclid(SECOND);
    let s = secs.rem_euclid(86_400);
    let fraction = if ns == 0 {
        String::new()
    } else {
        format!(".{ns:09}").trim_end_matches('0').to_string()
    };
    format!(
        "{}T{:02}:{:02}:{:02}{fraction}Z",
        day(secs),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_offsets() {
        let t = parse_datetime("2026-11-23T17:45:06Z").unwrap();
        assert_eq!(t, 1_795_455_906 * SECOND);
        assert_eq!(datetime(t), "2026-11-23T17:45:06Z");
        assert_eq!(parse_datetime("2026-11-23T18:45:06+01:00"), Some(t));
        assert_eq!(parse_datetime("2026-11-23 17:45:06z"), Some(t));
        assert_eq!(day(parse_date("2024-02-29").unwrap()), "2024-02-29");
        assert_eq!(day(parse_date("1969-12-31").unwrap()), "1969-12-31");
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_datetime("2026-11-23T25:00:00Z"), None);
        assert_eq!(parse_datetime("2026-11-23T10:00:00.Z"), None);
        assert_eq!(
            parse_bound("2026-11-23", true),
            parse_bound("2026-11-24", false)
        );
        assert_eq!(day_number(t), 1_795_455_906 / 86_400);
    }

    /// `…46.863Z` is not `…46Z` (#21): the fraction is kept, and a time
    /// 100 ms earlier is before it.
    #[test]
    fn fractions_of_a_second_are_kept() {
        let t = parse_datetime("2026-11-23T17:45:46.863Z").unwrap();
        let whole = parse_datetime("2026-11-23T17:45:46Z").unwrap();
        assert_eq!(t - whole, 863_000_000);
        assert!(parse_datetime("2026-11-23T17:45:46.763456Z").unwrap() < t);
        assert_eq!(datetime(t), "2026-11-23T17:45:46.863Z");
        assert_eq!(parse_datetime("2026-11-23T18:45:46.863+01:00"), Some(t));
        // Past nanoseconds: rounded up, never down.
        assert_eq!(
            parse_datetime("2026-11-23T17:45:46.8630000001Z"),
            Some(t + 1)
        );
        assert_eq!(parse_datetime("2026-11-23T17:45:46.8630000000Z"), Some(t));
        assert_eq!(parse_datetime("2026-11-23T17:45:46.86a3Z"), None);
        assert_eq!(
            datetime(parse_datetime("1969-12-31T23:59:59.5Z").unwrap()),
            "1969-12-31T23:59:59.5Z"
        );
    }
}
