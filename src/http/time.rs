//! The contract's time format: UTC, milliseconds, `Z` (`2026-01-15T10:36:39.123Z`).

use chrono::{DateTime, Utc};
use projections::time::{rfc3339, Fraction};

/// `time` in the contract's format.
pub fn format_time(time: DateTime<Utc>) -> String {
    rfc3339(time, Fraction::Millis)
}
