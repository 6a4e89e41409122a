//! UTC times as RFC 3339 text (`2026-01-15T10:36:39.123Z`), written digit by digit into
//! one allocation. chrono's general formatter goes through `fmt::Write` a character at a
//! time: it took a tenth of what the HTTP path adds to the post list's SELECT, and 11 % of
//! a JSON Lines export's samples (docs/PERFORMANCE.md). chrono still writes what the fixed
//! form cannot hold, a year outside 0–9999 and a leap second, and each form here is tested
//! against chrono's own.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::Serializer;

/// How many digits of the second's fraction to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fraction {
    /// Always three, cut (not rounded): the HTTP contract's form.
    Millis,
    /// None, three, six or nine, the fewest that hold it exactly: chrono's serde form,
    /// the form of an envelope's `recordedAt`.
    Exact,
}

impl Fraction {
    fn chrono_form(self) -> SecondsFormat {
        match self {
            Fraction::Millis => SecondsFormat::Millis,
            Fraction::Exact => SecondsFormat::AutoSi,
        }
    }

    /// The digits of the fraction written, and what they are worth.
    fn digits(self, nanos: u32) -> (u32, u32) {
        match self {
            Fraction::Millis => (nanos / 1_000_000, 3),
            Fraction::Exact if nanos == 0 => (0, 0),
            Fraction::Exact if nanos % 1_000_000 == 0 => (nanos / 1_000_000, 3),
            Fraction::Exact if nanos % 1_000 == 0 => (nanos / 1_000, 6),
            Fraction::Exact => (nanos, 9),
        }
    }
}

/// `time` as RFC 3339 in UTC, with a `Z`, its fraction of a second as `fraction` says.
pub fn rfc3339(time: DateTime<Utc>, fraction: Fraction) -> String {
    let (date, clock) = (time.date_naive(), time.time());
    let year = u32::try_from(date.year()).ok().filter(|&year| year <= 9999);
    let (Some(year), false) = (year, clock.nanosecond() >= 1_000_000_000) else {
        // Beyond the fixed form: a year outside 0–9999, or a leap second.
        return time.to_rfc3339_opts(fraction.chrono_form(), true);
    };
    let mut text = String::with_capacity(30);
    for (value, width, after) in [
        (year, 4, '-'),
        (date.month(), 2, '-'),
        (date.day(), 2, 'T'),
        (clock.hour(), 2, ':'),
        (clock.minute(), 2, ':'),
        (clock.second(), 2, '.'),
    ] {
        push_digits(&mut text, value, width);
        text.push(after);
    }
    let (digits, width) = fraction.digits(clock.nanosecond());
    if width == 0 {
        text.pop(); // the '.'
    }
    push_digits(&mut text, digits, width);
    text.push('Z');
    text
}

/// Serializes `time` as chrono does ([`Fraction::Exact`]), for `#[serde(serialize_with)]`.
pub fn serialize_exact<S: Serializer>(
    time: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*time, Fraction::Exact))
}

/// `value`'s last `width` decimal digits (at most nine), zeros in front. Divided by the
/// constant 10 only: a division by a power of ten computed at run time is a real division,
/// and a time has twenty-odd digits.
fn push_digits(text: &mut String, mut value: u32, width: u32) {
    let mut digits = [b'0'; 9];
    let width = width as usize;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    for &digit in &digits[..width] {
        text.push(char::from(digit));
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};

    use super::{rfc3339, Fraction};

    const FRACTIONS: [Fraction; 2] = [Fraction::Millis, Fraction::Exact];

    fn chrono_says(time: DateTime<Utc>, fraction: Fraction) -> String {
        time.to_rfc3339_opts(fraction.chrono_form(), true)
    }

    #[test]
    fn writes_what_chrono_writes() {
        // A spread of instants over the years 0 to 9999, whose fractions take every width.
        let mut seconds: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
        let last = 253_402_300_799; // 9999-12-31T23:59:59Z
        let nanos = [0, 123_000_000, 123_456_000, 123_456_789, 999_999_999, 1_000];
        let mut turn = 0;
        while seconds <= last {
            let time = Utc
                .timestamp_opt(seconds, nanos[turn % nanos.len()])
                .unwrap();
            for fraction in FRACTIONS {
                assert_eq!(rfc3339(time, fraction), chrono_says(time, fraction));
            }
            seconds += 7_919_993_573; // about 251 years, prime: every field moves
            turn += 1;
        }
        for time in [
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(last, 999_999_999).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 15, 10, 36, 39).unwrap(),
            Utc.timestamp_millis_opt(1_768_473_399_123).unwrap(),
            Utc.timestamp_micros(1_768_473_399_123_004).unwrap(),
        ] {
            for fraction in FRACTIONS {
                assert_eq!(rfc3339(time, fraction), chrono_says(time, fraction));
            }
        }
        let time = Utc.timestamp_micros(1_768_473_399_123_400).unwrap();
        assert_eq!(rfc3339(time, Fraction::Millis), "2026-01-15T10:36:39.123Z");
        assert_eq!(
            rfc3339(time, Fraction::Exact),
            "2026-01-15T10:36:39.123400Z"
        );
    }

    #[test]
    fn serializes_as_chrono_serializes() {
        let time = Utc.timestamp_micros(1_768_473_399_123_400).unwrap();
        let mut ours = serde_json::Serializer::new(Vec::new());
        super::serialize_exact(&time, &mut ours).unwrap();
        assert_eq!(ours.into_inner(), serde_json::to_vec(&time).unwrap());
    }

    #[test]
    fn leaves_what_the_fixed_form_cannot_hold_to_chrono() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_milli_opt(23, 59, 59, 1_500)
            .unwrap()
            .and_utc();
        for fraction in FRACTIONS {
            assert_eq!(rfc3339(leap, fraction), chrono_says(leap, fraction));
        }
        assert_eq!(rfc3339(leap, Fraction::Millis), "2016-12-31T23:59:60.500Z");
        for year in [-1, 10_000] {
            let time = Utc.with_ymd_and_hms(year, 6, 1, 0, 0, 0).unwrap();
            for fraction in FRACTIONS {
                assert_eq!(rfc3339(time, fraction), chrono_says(time, fraction));
            }
        }
    }
}
