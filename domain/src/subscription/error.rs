//! Why a subscription command was refused.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("the tenant has a subscription already; change its plan instead")]
    AlreadySubscribed,
    #[error("the tenant has no subscription")]
    NotSubscribed,
    #[error("the subscription is suspended for an unpaid invoice; pay it first")]
    Suspended,
    #[error("a plan change cannot change the currency")]
    CurrencyChange,
    #[error("no cancellation is scheduled")]
    NothingToResume,
}
