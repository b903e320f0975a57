//! The one place where failures become GraphQL errors: every error carries
//! `extensions.code` from one fixed set, plus fields that help the caller. Internal errors
//! are logged once here, with their cause, and reach the caller as a bare `INTERNAL` with the
//! request id, never with SQL or a backtrace.

use async_graphql::ErrorExtensions;
use commands::CommandError;
use commands::access::{AcceptInviteError, ChangeAccessError};
use commands::identity::{IssueTokenError, ResetPasswordError, SignUpError};
use commands::sessions::{ChangePasswordError, LogInError, TotpError};
use commands::tenancy::{ChangeTenantError, CreateTenantError};
use domain::access::AccessError;
use domain::access::GrowthRefused;
use domain::event_store::EventStoreError;
use domain::personal_data::PersonalDataError;
use domain::tenant::TenantError;
use domain::user::UserError;
use projections::read_your_writes::WaitError;

/// The codes a client can meet, and nothing else.
pub const CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "CONFLICT",
    "RATE_LIMITED",
    "PLAN_LIMIT_EXCEEDED",
    "INTERNAL",
];

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    BadInput {
        message: String,
        /// The argument or input field at fault.
        field: Option<&'static str>,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("too many attempts; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    PlanLimit(String),
    /// A plan limit, with what a client needs to offer an upgrade.
    #[error("{}", .0.message)]
    PlanLimitExceeded(Box<LimitExceeded>),
    /// An outside system (the payment provider) could not be reached: retry later.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadInput {
            message: message.into(),
            field: Some(field),
        }
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::BadInput { .. } => "BAD_USER_INPUT",
            Self::Conflict(_) => "CONFLICT",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::PlanLimit(_) | Self::PlanLimitExceeded(_) => "PLAN_LIMIT_EXCEEDED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// The caller must log in (or present a valid key).
    pub fn login_required() -> Self {
        Self::Unauthenticated("log in first: send `Authorization: Bearer <token>`".into())
    }
}

/// What resolvers return: an [`ApiError`] on its way to becoming a GraphQL error with its
/// code. It is deliberately not `Display`, so async-graphql's catch-all conversion (which
/// keeps only the message) cannot apply to it.
#[derive(Debug, Clone)]
pub struct GqlError(pub ApiError);

pub type GqlResult<T> = Result<T, GqlError>;

impl<T: Into<ApiError>> From<T> for GqlError {
    fn from(error: T) -> Self {
        Self(error.into())
    }
}

impl From<GqlError> for async_graphql::Error {
    fn from(GqlError(error): GqlError) -> Self {
        error.into_graphql()
    }
}

impl ApiError {
    pub fn into_graphql(self) -> async_graphql::Error {
        let error = self;
        if let ApiError::Internal(cause) = &error {
            tracing::error!(error = %cause, "request failed");
        }
        let code = error.code();
        let mut gql = async_graphql::Error::new(error.to_string());
        gql = gql.extend_with(|_, ext| {
            ext.set("code", code);
            match &error {
                ApiError::BadInput {
                    field: Some(field), ..
                } => ext.set("field", *field),
                ApiError::RateLimited { retry_after_secs } => {
                    ext.set("retryAfterSeconds", *retry_after_secs);
                }
                ApiError::PlanLimitExceeded(limit) => {
                    ext.set("limit", limit.key.as_str());
                    ext.set("max", limit.max);
                    ext.set("used", limit.used);
                    if let Some(end) = limit.period_end {
                        ext.set("periodEnd", end.to_rfc3339());
                    }
                    if let Some(plan) = &limit.cheapest_plan {
                        ext.set("cheapestPlan", plan.as_str());
                    }
                }
                _ => {}
            }
        });
        gql
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        use UserError as U;
        let message = error.to_string();
        match error {
            U::InvalidEmail => Self::bad_input("email", message),
            U::WeakPassword(_) => Self::bad_input("password", message),
            U::InvalidToken => Self::bad_input("token", message),
            U::InvalidRecoveryCode | U::TotpCodeReused => Self::Unauthenticated(message),
            U::EmailTaken | U::AlreadySignedUp | U::AlreadyVerified | U::TotpAlreadyEnabled => {
                Self::Conflict(message)
            }
            U::NoTotpEnrollment | U::TotpNotEnabled => Self::Conflict(message),
            U::EmailNotVerified => Self::Forbidden(message),
            U::NotFound => Self::NotFound(message),
        }
    }
}

/// A plan limit reached: which, at what value, how much is used, when the period ends (for
/// limits per period) and the cheapest plan that allows more (filled in by the resolver,
/// which can read the catalog: `graphql::billing::explain_limit`).
#[derive(Debug, Clone)]
pub struct LimitExceeded {
    pub message: String,
    pub key: domain::plan::LimitKey,
    pub max: u64,
    pub used: u64,
    pub period_end: Option<chrono::DateTime<chrono::Utc>>,
    pub cheapest_plan: Option<String>,
}

impl From<AccessError> for ApiError {
    fn from(error: AccessError) -> Self {
        use AccessError as A;
        let message = error.to_string();
        match error {
            A::NotFound => Self::NotFound(message),
            A::Forbidden | A::KeysCannotCreateKeys => Self::Forbidden(message),
            A::NoSuchMember | A::NoSuchApiKey | A::NoSuchInvite => Self::NotFound(message),
            A::InvalidInvite => Self::bad_input("token", message),
            A::InviteForAnotherEmail => Self::Forbidden(message),
            A::InvalidKeyName => Self::bad_input("name", message),
            A::AlreadyFounded | A::LastOwner | A::AlreadyMember => Self::Conflict(message),
            A::LimitReached(_) => Self::PlanLimit(message),
            A::PlanLimitReached { key, limit, used } => {
                Self::PlanLimitExceeded(Box::new(LimitExceeded {
                    message,
                    key,
                    max: limit,
                    used,
                    period_end: None,
                    cheapest_plan: None,
                }))
            }
        }
    }
}

impl From<TenantError> for ApiError {
    fn from(error: TenantError) -> Self {
        use TenantError as T;
        let message = error.to_string();
        match error {
            T::InvalidName => Self::bad_input("name", message),
            T::InvalidSlug => Self::bad_input("slug", message),
            T::InvalidSettings => Self::bad_input("settings", message),
            T::InvalidReason => Self::bad_input("reason", message),
            T::NegativeRetention => Self::bad_input("retention", message),
            T::NotFound => Self::NotFound(message),
            T::LimitReached { .. } => Self::PlanLimit(message),
            T::SlugTaken => Self::Conflict(message),
            T::AlreadyProvisioned
            | T::Closed
            | T::Suspended
            | T::NotSuspended
            | T::RetentionNotOver(_) => Self::Conflict(message),
        }
    }
}

impl From<CreateTenantError> for ApiError {
    fn from(error: CreateTenantError) -> Self {
        match error {
            CreateTenantError::Tenant(e) => e.into(),
            CreateTenantError::Access(e) => e.into(),
            CreateTenantError::NoSuchOwner => Self::NotFound(error.to_string()),
        }
    }
}

impl From<SignUpError> for ApiError {
    fn from(error: SignUpError) -> Self {
        match error {
            SignUpError::User(e) => e.into(),
            SignUpError::PersonalData(e) => e.into(),
            SignUpError::Credentials(e) => Self::internal(e),
        }
    }
}

impl From<commands::billing::BillingError> for ApiError {
    fn from(error: commands::billing::BillingError) -> Self {
        use commands::billing::BillingError as B;
        let message = error.to_string();
        match error {
            B::Plan(e) => e.into(),
            B::Subscription(e) => e.into(),
            B::Retired(_) | B::NoPrice { .. } => Self::bad_input("plan", message),
            B::TenantNotActive => Self::Conflict(message),
            B::NoSuchTenant => Self::NotFound("no such tenant".into()),
        }
    }
}

impl From<std::convert::Infallible> for ApiError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<commands::payments::PaymentMethodError> for ApiError {
    fn from(error: commands::payments::PaymentMethodError) -> Self {
        use commands::payments::PaymentMethodError as P;
        use domain::payments::PaymentsError;
        let message = error.to_string();
        match error {
            P::LocalMode | P::NotSubscribed => Self::Conflict(message),
            P::NotLinkedYet | P::Provider(PaymentsError::Unavailable(_)) => {
                Self::Unavailable(message)
            }
            P::Provider(PaymentsError::Refused(_)) => Self::Internal(message),
            P::Load(e) => Self::internal(e),
        }
    }
}

impl From<domain::plan::PlanError> for ApiError {
    fn from(error: domain::plan::PlanError) -> Self {
        use domain::plan::PlanError as P;
        let message = error.to_string();
        match error {
            P::NotFound => Self::bad_input("plan", message),
            P::InvalidKey => Self::bad_input("key", message),
            P::InvalidName => Self::bad_input("name", message),
            P::InvalidCurrency
            | P::NoPrice
            | P::MixedCurrencies
            | P::NegativePrice
            | P::DuplicatePrice(_) => Self::bad_input("prices", message),
            P::InvalidFeature => Self::bad_input("features", message),
            P::InvalidOverage => Self::bad_input("overage", message),
            P::TrialTooLong => Self::bad_input("trialDays", message),
        }
    }
}

impl From<domain::subscription::SubscriptionError> for ApiError {
    fn from(error: domain::subscription::SubscriptionError) -> Self {
        use domain::subscription::SubscriptionError as S;
        let message = error.to_string();
        match error {
            S::CurrencyChange => Self::bad_input("plan", message),
            S::AlreadySubscribed | S::NotSubscribed | S::Suspended | S::NothingToResume => {
                Self::Conflict(message)
            }
        }
    }
}

impl From<domain::webhook::WebhookError> for ApiError {
    fn from(error: domain::webhook::WebhookError) -> Self {
        use domain::webhook::WebhookError as W;
        let message = error.to_string();
        match error {
            W::InvalidUrl(_) => Self::bad_input("url", message),
            W::NotSet => Self::NotFound(message),
        }
    }
}

impl From<domain::audit::LedgerError> for ApiError {
    fn from(error: domain::audit::LedgerError) -> Self {
        use domain::audit::LedgerError as L;
        let message = error.to_string();
        match error {
            L::EmptyRange => Self::bad_input("to", message),
            L::UnknownExport => Self::NotFound(message),
            L::DigestChainMoved | L::ExportEnded | L::UnknownDigest | L::ExportRunning => {
                Self::Conflict(message)
            }
            L::RetentionBeyondPlan { .. } => Self::PlanLimit(message),
            L::RetentionTooShort => Self::bad_input("days", message),
        }
    }
}

impl From<commands::privacy::ErasureError> for ApiError {
    fn from(error: commands::privacy::ErasureError) -> Self {
        use commands::privacy::ErasureError;
        match error {
            ErasureError::User(e) => e.into(),
            ErasureError::LastOwner(tenants) => Self::Conflict(format!(
                "you are the last owner of tenant(s) {}: hand them over (make another member an owner) or close them first",
                tenants
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            ErasureError::Leaving(reason) | ErasureError::PersonalData(reason) => {
                Self::internal(reason)
            }
        }
    }
}

impl From<IssueTokenError> for ApiError {
    fn from(error: IssueTokenError) -> Self {
        match error {
            IssueTokenError::User(e) => e.into(),
            IssueTokenError::PersonalData(e) => e.into(),
        }
    }
}

impl From<ResetPasswordError> for ApiError {
    fn from(error: ResetPasswordError) -> Self {
        match error {
            ResetPasswordError::User(e) => e.into(),
            ResetPasswordError::Credentials(e) => Self::internal(e),
        }
    }
}

impl From<LogInError> for ApiError {
    fn from(error: LogInError) -> Self {
        match error {
            LogInError::WrongPassword
            | LogInError::SecondFactorRequired
            | LogInError::WrongSecondFactor => Self::Unauthenticated(error.to_string()),
            LogInError::User(e) => e.into(),
            LogInError::Replayed => Self::Conflict(error.to_string()),
            LogInError::PersonalData(e) => e.into(),
        }
    }
}

impl From<ChangePasswordError> for ApiError {
    fn from(error: ChangePasswordError) -> Self {
        match error {
            ChangePasswordError::WrongCurrentPassword => {
                Self::bad_input("currentPassword", error.to_string())
            }
            ChangePasswordError::User(e) => e.into(),
            ChangePasswordError::Credentials(e) => Self::internal(e),
        }
    }
}

impl From<TotpError> for ApiError {
    fn from(error: TotpError) -> Self {
        match error {
            TotpError::User(e) => e.into(),
            TotpError::PersonalData(e) => e.into(),
            TotpError::AlreadyConfirmed | TotpError::CodesShownOnce => {
                Self::Conflict(error.to_string())
            }
            TotpError::WrongCode => Self::bad_input("code", error.to_string()),
            TotpError::WrongPassword => Self::bad_input("currentPassword", error.to_string()),
            TotpError::SecondFactorRequired => Self::bad_input("totpCode", error.to_string()),
            TotpError::SecretUnreadable => Self::internal(error),
        }
    }
}

impl From<GrowthRefused> for ApiError {
    fn from(error: GrowthRefused) -> Self {
        match error {
            GrowthRefused::Suspended | GrowthRefused::Closed => Self::Conflict(error.to_string()),
            GrowthRefused::NoSuchTenant => Self::NotFound(error.to_string()),
        }
    }
}

impl From<ChangeAccessError> for ApiError {
    fn from(error: ChangeAccessError) -> Self {
        match error {
            ChangeAccessError::Access(e) => e.into(),
            ChangeAccessError::Growth(e) => e.into(),
            ChangeAccessError::PersonalData(e) => e.into(),
        }
    }
}

impl From<AcceptInviteError> for ApiError {
    fn from(error: AcceptInviteError) -> Self {
        match error {
            AcceptInviteError::Change(e) => e.into(),
            AcceptInviteError::InvalidToken => Self::bad_input("token", error.to_string()),
            AcceptInviteError::NoSuchUser => Self::NotFound(error.to_string()),
        }
    }
}

impl From<ChangeTenantError> for ApiError {
    fn from(error: ChangeTenantError) -> Self {
        match error {
            ChangeTenantError::Tenant(e) => e.into(),
            ChangeTenantError::Access(e) => e.into(),
        }
    }
}

impl<E> From<CommandError<E>> for ApiError
where
    E: std::error::Error + Into<ApiError> + 'static,
{
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(e) => e.into(),
            CommandError::Contention { .. } => {
                Self::Conflict("the object kept changing; retry the request".into())
            }
            CommandError::IdempotencyKeyReused { .. } => Self::BadInput {
                message: "this idempotency key was already used for a different request (another \
                          mutation or other arguments); use a new key"
                    .into(),
                field: Some("idempotencyKey"),
            },
            CommandError::Store(EventStoreError::VersionConflict { .. }) => {
                Self::Conflict("the object changed under the request; retry it".into())
            }
            other => Self::internal(other),
        }
    }
}

impl From<commands::LoadError> for ApiError {
    fn from(error: commands::LoadError) -> Self {
        Self::internal(error)
    }
}

impl From<PersonalDataError> for ApiError {
    fn from(error: PersonalDataError) -> Self {
        match error {
            PersonalDataError::Forgotten => Self::Conflict(error.to_string()),
            other => Self::internal(other),
        }
    }
}

impl From<sqlx_error::Error> for ApiError {
    fn from(error: sqlx_error::Error) -> Self {
        Self::internal(error)
    }
}

impl From<WaitError> for ApiError {
    fn from(error: WaitError) -> Self {
        match error {
            WaitError::NotCaughtUp { .. } | WaitError::Unknown(_) => Self::Conflict(format!(
                "the read models have not caught up with the requested position yet ({error}); retry shortly"
            )),
            WaitError::Database(e) => Self::internal(e),
        }
    }
}

/// sqlx errors reach this crate only through the projections' query functions.
mod sqlx_error {
    pub type Error = projections::QueryError;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extension(error: &async_graphql::Error, key: &str) -> Option<String> {
        let extensions = error.extensions.as_ref()?;
        extensions.get(key).map(ToString::to_string)
    }

    #[test]
    fn every_error_carries_one_of_the_fixed_codes_and_internal_causes_stay_inside() {
        let all = [
            ApiError::Unauthenticated("u".into()),
            ApiError::Forbidden("f".into()),
            ApiError::NotFound("n".into()),
            ApiError::bad_input("email", "bad"),
            ApiError::Conflict("c".into()),
            ApiError::RateLimited {
                retry_after_secs: 7,
            },
            ApiError::PlanLimit("p".into()),
            ApiError::internal("relation \"events\" does not exist (SQLSTATE 42P01)"),
        ];
        for error in all {
            let code = error.code();
            assert!(CODES.contains(&code), "{code}");
            let gql = error.clone().into_graphql();
            assert_eq!(
                extension(&gql, "code").as_deref(),
                Some(format!("\"{code}\"").as_str())
            );
            if let ApiError::Internal(_) = error {
                assert_eq!(gql.message, "internal error");
                assert!(!format!("{:?}", gql.extensions).contains("SQLSTATE"));
            }
        }
        let bad = ApiError::bad_input("email", "bad").into_graphql();
        assert_eq!(extension(&bad, "field").as_deref(), Some("\"email\""));
        let limited = ApiError::RateLimited {
            retry_after_secs: 7,
        }
        .into_graphql();
        assert_eq!(
            extension(&limited, "retryAfterSeconds").as_deref(),
            Some("7")
        );
    }

    #[test]
    fn domain_refusals_map_to_the_codes_a_client_can_act_on() {
        assert_eq!(
            ApiError::from(UserError::WeakPassword("x")).code(),
            "BAD_USER_INPUT"
        );
        assert_eq!(ApiError::from(UserError::EmailTaken).code(), "CONFLICT");
        assert_eq!(ApiError::from(AccessError::NotFound).code(), "NOT_FOUND");
        assert_eq!(ApiError::from(AccessError::Forbidden).code(), "FORBIDDEN");
        assert_eq!(ApiError::from(AccessError::LastOwner).code(), "CONFLICT");
        assert_eq!(
            ApiError::from(AccessError::LimitReached(100)).code(),
            "PLAN_LIMIT_EXCEEDED"
        );
        assert_eq!(
            ApiError::from(TenantError::LimitReached {
                kind: domain::tenant::ResourceKind::ApiKey,
                limit: 1
            })
            .code(),
            "PLAN_LIMIT_EXCEEDED"
        );
    }
}
