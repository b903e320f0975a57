//! Why a plan command, or a value given for one, was refused.

use super::Interval;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("a plan key is 1 to 40 of a-z, 0-9 and -, starting with a letter")]
    InvalidKey,
    #[error("a plan name is 1 to 100 characters without control characters")]
    InvalidName,
    #[error("a currency is a three-letter ISO 4217 code")]
    InvalidCurrency,
    #[error("a feature name is 1 to 64 of a-z, 0-9 and _")]
    InvalidFeature,
    #[error(
        "overage names a metered monthly allowance (bandwidth.bytes, pipeline.datapoints) and bills per at least one unit"
    )]
    InvalidOverage,
    #[error("a plan needs at least one price")]
    NoPrice,
    #[error("all of a plan's prices must be in one currency")]
    MixedCurrencies,
    #[error("prices must not be negative")]
    NegativePrice,
    #[error("a plan has at most one price per interval ({0:?} given twice)")]
    DuplicatePrice(Interval),
    #[error("a trial lasts at most 365 days")]
    TrialTooLong,
    #[error("no such plan")]
    NotFound,
}
