//! Period arithmetic: month-end clamping and proration (see the module documentation).

use chrono::{DateTime, Months, Utc};

/// `anchor` plus `months` months, the day clamped to the month's length (always counted from
/// the anchor, so January 31 gives February 28 or 29, then March 31).
pub fn add_months(anchor: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    anchor
        .checked_add_months(Months::new(months))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The part of `amount` for what is left of `[start, end)` at `at`, in seconds, rounded half
/// up to a minor unit (all of it before the start, nothing after the end).
pub fn prorated(
    amount: i64,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    at: DateTime<Utc>,
) -> i64 {
    let total = (end - start).num_seconds();
    if total <= 0 {
        return 0;
    }
    let left = (end - at).num_seconds().clamp(0, total);
    let scaled = i128::from(amount) * i128::from(left);
    let total = i128::from(total);
    i64::try_from((2 * scaled + total) / (2 * total)).unwrap_or(i64::MAX)
}
