//! The contract's time format: UTC, milliseconds, `Z` (`2026-01-15T10:36:39.123Z`).

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// `time` in the contract's format. Written digit by digit into one allocation: a page of
/// posts formats sixty times, and chrono's general formatter took a tenth of what the
/// HTTP path adds to the post list's SELECT (docs/PERFORMANCE.md, "Queries"). chrono
/// still writes what the fixed form cannot hold: a year outside 0–9999 and a leap second.
pub fn format_time(time: DateTime<Utc>) -> String {
    let (date, clock) = (time.date_naive(), time.time());
    let (Ok(year), true) = (
        u32::try_from(date.year()),
        clock.nanosecond() < 1_000_000_000,
    ) else {
        return time.to_rfc3339_opts(SecondsFormat::Millis, true);
    };
    if year > 9999 {
        return time.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    let mut text = String::with_capacity(24);
    for (value, width, after) in [
        (year, 4, '-'),
        (date.month(), 2, '-'),
        (date.day(), 2, 'T'),
        (clock.hour(), 2, ':'),
        (clock.minute(), 2, ':'),
        (clock.second(), 2, '.'),
        (clock.nanosecond() / 1_000_000, 3, 'Z'),
    ] {
        for place in (0..width).rev() {
            let digit = value / 10u32.pow(place) % 10;
            text.push(char::from(b'0' + digit as u8));
        }
        text.push(after);
    }
    text
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};

    use super::format_time;

    fn chrono_says(time: DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    #[test]
    fn writes_what_chrono_writes() {
        // A spread of instants over the years 0 to 9999, with sub-millisecond parts that
        // must be cut, not rounded.
        let mut seconds: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
        let last = 253_402_300_799; // 9999-12-31T23:59:59Z
        let mut nanos: u32 = 0;
        while seconds <= last {
            let time = Utc.timestamp_opt(seconds, nanos).unwrap();
            assert_eq!(format_time(time), chrono_says(time));
            seconds += 7_919_993_573; // about 251 years, prime: every field moves
            nanos = (nanos + 123_456_789) % 1_000_000_000;
        }
        for time in [
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(last, 999_999_999).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 15, 10, 36, 39).unwrap(),
            Utc.timestamp_millis_opt(1_768_473_399_123).unwrap(),
        ] {
            assert_eq!(format_time(time), chrono_says(time));
        }
        assert_eq!(
            format_time(Utc.timestamp_millis_opt(1_768_473_399_123).unwrap()),
            "2026-01-15T10:36:39.123Z"
        );
    }

    #[test]
    fn leaves_what_the_fixed_form_cannot_hold_to_chrono() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_milli_opt(23, 59, 59, 1_500)
            .unwrap()
            .and_utc();
        assert_eq!(format_time(leap), chrono_says(leap));
        assert_eq!(format_time(leap), "2016-12-31T23:59:60.500Z");
        for year in [-1, 10_000] {
            let time = Utc.with_ymd_and_hms(year, 6, 1, 0, 0, 0).unwrap();
            assert_eq!(format_time(time), chrono_says(time));
        }
    }
}
