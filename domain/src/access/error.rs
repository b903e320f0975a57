//! Why an access command or a permission check was refused.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// Also what a non-member gets for any tenant: its existence is not revealed.
    #[error("no such tenant")]
    NotFound,
    #[error("your role does not allow this")]
    Forbidden,
    #[error("the tenant already has its owner")]
    AlreadyFounded,
    #[error("a tenant must keep at least one owner")]
    LastOwner,
    #[error("no such member")]
    NoSuchMember,
    #[error("already a member")]
    AlreadyMember,
    #[error("the invite is invalid, was used, or has expired")]
    InvalidInvite,
    #[error("the invite was sent to another e-mail address")]
    InviteForAnotherEmail,
    #[error("no such API key")]
    NoSuchApiKey,
    #[error("no such invite")]
    NoSuchInvite,
    #[error("an API key name must be 1 to 100 characters without control characters")]
    InvalidKeyName,
    #[error("a tenant may have at most {0} of these")]
    LimitReached(usize),
    #[error("API keys cannot create API keys; a member creates them")]
    KeysCannotCreateKeys,
    #[error("the tenant's plan allows {limit} {}; it has {used}", key.as_str())]
    PlanLimitReached {
        key: crate::plan::LimitKey,
        limit: u64,
        used: u64,
    },
}
