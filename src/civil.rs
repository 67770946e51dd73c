//! Calendar dates from unix time, for the RFC 3339 timestamps of log lines and error
//! messages, without a date crate.
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

    /// Hinnant's inverse, `days_from_civil`, to check the conversion both ways.
    fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        let year = year - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let yoe = year.rem_euclid(400);
        let mp = i64::from((month + 9) % 12);
        let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

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

    proptest! {
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
