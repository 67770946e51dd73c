//! Calendar dates from unix time and back, for the RFC 3339 timestamps of log lines and
//! error messages and of MQTT payloads, without a date crate.
//!
//! The day-to-date step is Howard Hinnant's `civil_from_days`
//! (<https://howardhinnant.github.io/date_algorithms.html>): shift the epoch to 0000-03-01
//! so that the leap day ends the year, split the day count into 400-year eras of 146 097
//! days, then read year, month and day of the era off closed formulas. It is exact for the
//! proleptic Gregorian calendar over every day count an `i64` of milliseconds can reach.

/// The proleptic Gregorian date `(year, month 1..=12, day 1..=31)` of `days` since
/// 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Days since 0000-03-01; |days| ≤ i64::MAX / 86_400_000 for millisecond input, far from
    // overflow.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Hinnant's inverse of [`civil_from_days`]: days since 1970-01-01 of a proleptic
/// Gregorian date (`month` 1..=12, `day` 1..=31, not checked against the month).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days in `month` (1..=12) of `year`, proleptic Gregorian.
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses an RFC 3339 date-time into unix milliseconds:
///
/// 1. `YYYY-MM-DD` (four-digit year, a real calendar date);
/// 2. `T`, `t` or a space (RFC 3339 section 5.6 allows the space);
/// 3. `HH:MM:SS`, hours 00..=23, seconds 00..=59 (a leap second `60` is refused, as Go's
///    `time.Parse` does, rather than silently moved);
/// 4. optionally `.` and one or more digits, truncated to the millisecond;
/// 5. `Z`, `z`, or an offset `+HH:MM` / `-HH:MM` (hours 00..=23), which is subtracted.
///
/// Nothing may follow. The error says which part is wrong.
pub fn parse_rfc3339_millis(text: &str) -> Result<i64, String> {
    let b = text.as_bytes();
    let digits = |at: usize, n: usize, what: &str| -> Result<u32, String> {
        let part = b
            .get(at..at + n)
            .filter(|p| p.iter().all(u8::is_ascii_digit))
            .ok_or_else(|| format!("expected {n} digits of the {what} at byte {at}"))?;
        Ok(part
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
    };
    let expect = |at: usize, allowed: &[u8], what: &str| -> Result<u8, String> {
        b.get(at)
            .copied()
            .filter(|c| allowed.contains(c))
            .ok_or_else(|| format!("expected {what} at byte {at}"))
    };
    let year = i64::from(digits(0, 4, "year")?);
    expect(4, b"-", "'-'")?;
    let month = digits(5, 2, "month")?;
    expect(7, b"-", "'-'")?;
    let day = digits(8, 2, "day")?;
    expect(10, b"Tt ", "'T' between date and time")?;
    let hour = digits(11, 2, "hour")?;
    expect(13, b":", "':'")?;
    let minute = digits(14, 2, "minute")?;
    expect(16, b":", "':'")?;
    let second = digits(17, 2, "second")?;
    if !(1..=12).contains(&month) {
        return Err(format!("month {month:02} is not 01..12"));
    }
    if !(1..=days_in_month(year, month)).contains(&day) {
        return Err(format!("{year:04}-{month:02} has no day {day:02}"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "time {hour:02}:{minute:02}:{second:02} is not a time of day (00:00:00..23:59:59)"
        ));
    }
    let mut at = 19;
    let mut millis_of_second = 0u32;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 3 {
                millis_of_second = millis_of_second * 10 + u32::from(b[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return Err(format!("expected digits after '.' at byte {start}"));
        }
        for _ in (at - start)..3 {
            millis_of_second *= 10;
        }
    }
    let offset_minutes: i64 = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let hours = digits(at + 1, 2, "offset hours")?;
            expect(at + 3, b":", "':' in the offset")?;
            let minutes = digits(at + 4, 2, "offset minutes")?;
            if hours > 23 || minutes > 59 {
                return Err(format!("offset {hours:02}:{minutes:02} is out of range"));
            }
            at += 6;
            let total = i64::from(hours * 60 + minutes);
            if sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => {
            return Err(format!(
                "expected 'Z' or an offset like +02:00 at byte {at}"
            ))
        }
    };
    if at != b.len() {
        return Err(format!("unexpected text after the date-time at byte {at}"));
    }
    let days = days_from_civil(year, month, day);
    let seconds =
        days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
    Ok(seconds * 1000 + i64::from(millis_of_second))
}

/// `millis` since the epoch as RFC 3339 UTC with milliseconds: `2026-12-03T10:00:00.123Z`.
/// Years outside 0000..=9999 (which RFC 3339 cannot write) get ISO 8601's expanded form,
/// a sign and at least five digits (`+56170-…`, `-0001-…` stays four), so that an absurd
/// timestamp in an error message still reads as a date.
pub fn rfc3339_millis(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let in_day = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (second, milli) = (in_day / 1_000 % 60, in_day % 1_000);
    let year = match year {
        0..=9999 => format!("{year:04}"),
        10_000.. => format!("+{year:05}"),
        _ => format!("-{:04}", year.unsigned_abs()),
    };
    format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(-25_508), (1900, 3, 1));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            rfc3339_millis(1_710_000_000_123),
            "2024-03-09T16:00:00.123Z"
        );
        assert_eq!(
            rfc3339_millis(1_796_292_000_123),
            "2026-12-03T10:00:00.123Z"
        );
        // The last millisecond i64 nanoseconds can hold.
        assert_eq!(
            rfc3339_millis(i64::MAX / 1_000_000),
            "2262-04-11T23:47:16.854Z"
        );
        assert_eq!(
            rfc3339_millis(253_402_300_799_999),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn years_beyond_four_digits_are_expanded() {
        // A millisecond timestamp read as seconds: what `precision=s` used to store.
        assert_eq!(
            rfc3339_millis(1_710_000_000_000_000),
            "+56157-09-28T16:00:00.000Z"
        );
        assert!(rfc3339_millis(i64::MIN).starts_with("-292"));
        assert!(rfc3339_millis(i64::MAX).starts_with("+292"));
        assert!(rfc3339_millis(-62_198_755_200_000).starts_with("-0001-"));
    }

    #[test]
    fn rfc3339_parses_zones_fractions_and_separators() {
        let ten = 1_796_292_000_000; // 2026-12-03T10:00:00Z
        for (text, ms) in [
            ("2026-12-03T10:00:00Z", ten),
            ("2026-12-03t10:00:00z", ten),
            ("2026-12-03 10:00:00Z", ten),
            ("2026-12-03T11:00:00+01:00", ten),
            ("2026-12-03T04:30:00-05:30", ten),
            ("2026-12-03T10:00:00.5Z", ten + 500),
            ("2026-12-03T10:00:00.123456789Z", ten + 123),
            ("2026-12-03T10:00:00.000+00:00", ten),
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T00:00:00Z", 951_782_400_000),
            ("1969-12-31T23:59:59Z", -1000),
        ] {
            assert_eq!(parse_rfc3339_millis(text), Ok(ms), "{text}");
        }
    }

    #[test]
    fn rfc3339_refuses_what_is_not_a_date_time() {
        for (text, why) in [
            ("", "year"),
            ("2026-12-03", "'T'"),
            ("2026-12-03T10:00", "':'"),
            ("2026-12-03T10:00:00", "'Z'"),
            ("2026-12-03T10:00:00+0100", "':' in the offset"),
            ("2026-13-03T10:00:00Z", "month"),
            ("2026-02-29T10:00:00Z", "no day 29"),
            ("2026-04-31T10:00:00Z", "no day 31"),
            ("2026-12-00T10:00:00Z", "no day 00"),
            ("2026-12-03T24:00:00Z", "time of day"),
            ("2026-12-03T23:59:60Z", "time of day"),
            ("2026-12-03T10:00:00.Z", "digits after"),
            ("2026-12-03T10:00:00Z ", "after the date-time"),
            ("2026-12-03T10:00:00+24:00", "offset"),
            ("+2026-12-03T10:00:00Z", "year"),
            ("２０２６-12-03T10:00:00Z", "year"),
            ("1710000000", "'-'"),
        ] {
            let e = parse_rfc3339_millis(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips_through_the_formatter(ms in 0i64..253_402_300_799_999) {
            prop_assert_eq!(parse_rfc3339_millis(&rfc3339_millis(ms)), Ok(ms));
        }

        #[test]
        fn rfc3339_never_panics(text in "[0-9T:.Zz+ -]{0,40}") {
            let _ = parse_rfc3339_millis(&text);
        }

        #[test]
        fn days_round_trip(days in -(i64::MAX / 86_400_000)..(i64::MAX / 86_400_000)) {
            let (y, m, d) = civil_from_days(days);
            prop_assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn consecutive_days_are_consecutive_dates(days in -1_000_000i64..1_000_000) {
            let (y0, m0, d0) = civil_from_days(days);
            let (y1, m1, d1) = civil_from_days(days + 1);
            let next_day = (y1, m1, d1) == (y0, m0, d0 + 1);
            let next_month = d1 == 1 && ((y1, m1) == (y0, m0 + 1) || (y1, m1, m0) == (y0 + 1, 1, 12));
            prop_assert!(next_day || next_month, "{:?} -> {:?}", (y0, m0, d0), (y1, m1, d1));
        }
    }
}
