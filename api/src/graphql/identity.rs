//! Accounts: sign-up, e-mail verification, password reset, and the logged-in user (`me`).
//! Sessions, password changes and TOTP are in [`super::sessions`].

use super::tenancy::TenantNode;
use super::{consistent, idempotency, meta, principal, services};
use crate::error::{ApiError, GqlResult};
use crate::services::{RequestMeta, Services};
use async_graphql::connection::Connection;
use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use commands::identity::{
    SignUp, TokenPurpose, account_of, issue_token, reset_password, sign_up, verify_email,
};
use domain::aggregate::Aggregate;
use domain::event::Actor;
use domain::ids::{SubjectId, UserId};
use domain::user::{Email, NewPassword, User, UserError, UserToken};
use projections::tenant_access::TenantScope;
use uuid::Uuid;

/// The logged-in user.
pub struct UserNode {
    id: UserId,
    pub(crate) state: User,
    operator: bool,
}

#[Object(name = "User")]
impl UserNode {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// Null once the user's personal data was erased.
    async fn email(&self, ctx: &Context<'_>) -> GqlResult<Option<String>> {
        let Some(sealed) = &self.state.email else {
            return Ok(None);
        };
        Ok(services(ctx)
            .vault
            .open(SubjectId::from_uuid(self.id.as_uuid()), sealed)
            .await?)
    }

    async fn email_verified(&self) -> bool {
        self.state.email_verified
    }

    async fn totp_enabled(&self) -> bool {
        self.state.totp_enabled()
    }

    /// Whether this user is a platform operator.
    async fn is_operator(&self) -> bool {
        self.operator
    }

    /// The tenants this user is a member of, ordered by id.
    #[graphql(complexity = "super::connection::list_complexity(first, child_complexity)")]
    async fn tenants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Connection<String, TenantNode>> {
        let services = services(ctx);
        let size = super::connection::page_size(first)?;
        let after = super::connection::decode_cursor(after.as_deref())?
            .map(|c| {
                Uuid::parse_str(&c)
                    .map(domain::ids::TenantId::from_uuid)
                    .map_err(|_| {
                        ApiError::bad_input("after", "`after` is not a cursor from this API")
                    })
            })
            .transpose()?;
        services.metrics.read_queries(1);
        let scopes = TenantScope::memberships(
            &services.read_db,
            self.id,
            after,
            u32::try_from(size + 1).unwrap_or(u32::MAX),
        )
        .await?;
        let has_next = scopes.len() > size;
        let scopes: Vec<TenantScope> = scopes.into_iter().take(size).collect();
        let loader = ctx.data_unchecked::<DataLoader<super::loaders::TenantsLoader>>();
        let views = loader
            .load_many(scopes.iter().copied())
            .await
            .map_err(ApiError::internal)?;
        let mut connection = Connection::new(after.is_some(), has_next);
        for scope in scopes {
            if let Some(view) = views.get(&scope) {
                connection.edges.push(async_graphql::connection::Edge::new(
                    super::connection::encode_cursor(&scope.tenant().to_string()),
                    TenantNode::new(scope, view.clone()),
                ));
            }
        }
        Ok(connection)
    }
}

pub(crate) async fn user_node(services: &Services, id: UserId) -> Result<UserNode, ApiError> {
    let state = services.executor.load::<User>(id.as_uuid()).await?.state;
    if state.id.is_none() {
        return Err(ApiError::NotFound("no such user".into()));
    }
    let operator = state
        .email_index
        .is_some_and(|i| services.operators.contains(&i));
    Ok(UserNode {
        id,
        state,
        operator,
    })
}

#[derive(Default)]
pub struct IdentityQuery;

#[Object]
impl IdentityQuery {
    /// The logged-in user. `atPosition` waits until the read models reached a position a
    /// mutation returned.
    async fn me(&self, ctx: &Context<'_>, at_position: Option<String>) -> GqlResult<UserNode> {
        consistent(ctx, at_position.as_deref(), crate::areas::READ_MODELS).await?;
        let (user, _) = principal(ctx).user()?;
        Ok(user_node(services(ctx), user).await?)
    }
}

#[derive(InputObject)]
pub struct SignUpInput {
    pub email: String,
    /// 10 to 128 characters, at least 5 different ones, not a common password.
    pub password: String,
}

#[derive(InputObject)]
pub struct LogInInput {
    pub email: String,
    pub password: String,
    /// Required when the account has TOTP enabled (or give a recovery code).
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
}

#[derive(SimpleObject)]
pub struct UserPayload {
    pub user: UserNode,
    /// The log position this mutation wrote; pass it as `atPosition` to read your write.
    pub position: String,
}

/// The same whether the address was free or had an account: the address's owner learns
/// which from the e-mail (a verification link, or a notice that someone tried to sign up).
#[derive(SimpleObject)]
pub struct SignUpPayload {
    /// Always true.
    pub accepted: bool,
    pub position: String,
}

/// A mutation whose only result is the position it wrote.
#[derive(SimpleObject)]
pub struct Done {
    pub position: String,
}

#[derive(SimpleObject)]
pub struct LogInPayload {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserNode,
    pub position: String,
}

#[derive(SimpleObject)]
pub struct Accepted {
    /// Always true: whether an account exists is not revealed.
    pub accepted: bool,
}

#[derive(SimpleObject)]
pub struct LogOutPayload {
    pub position: String,
}

#[derive(SimpleObject)]
pub struct TotpEnrollment {
    /// Base32, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
    pub position: String,
}

#[derive(SimpleObject)]
pub struct RecoveryCodes {
    /// Shown once: each works once in place of a TOTP code.
    pub recovery_codes: Vec<String>,
    pub position: String,
}

pub(crate) fn parse_email(email: &str) -> Result<Email, ApiError> {
    Email::parse(email).map_err(ApiError::from)
}

/// Whom a per-IP limit counts: the address, or for IPv6 its /64 (one host usually holds a
/// whole /64, so single addresses would be free to rotate).
pub(crate) fn client_key(meta: &RequestMeta) -> String {
    meta.ip.map_or_else(|| "unknown".into(), client_key_of)
}

/// [`client_key`] of an address.
pub(crate) fn client_key_of(ip: std::net::IpAddr) -> String {
    let ip = Some(ip).map(|ip| match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    });
    match ip {
        Some(std::net::IpAddr::V6(ip)) => {
            let s = ip.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(ip) => ip.to_string(),
        None => "unknown".into(),
    }
}

fn parse_user_token(token: &str) -> Result<UserToken, ApiError> {
    UserToken::parse(token).ok_or_else(|| ApiError::from(UserError::InvalidToken))
}

/// The user who owns the e-mail address, if any.
pub(crate) async fn user_by_email(
    services: &Services,
    email: &Email,
) -> Result<Option<UserId>, ApiError> {
    Ok(account_of(&services.executor, services.vault.as_ref(), email).await?)
}

/// The context of a command on `user`'s stream: the caller's idempotency key (checked
/// here), the IP sealed under the user's key.
pub(crate) async fn user_context(
    services: &Services,
    user: UserId,
    actor: Actor,
    key: Option<&ID>,
    meta: &RequestMeta,
) -> Result<commands::CommandContext, ApiError> {
    services
        .context(
            actor,
            user.as_uuid(),
            idempotency(key)?,
            Some(SubjectId::from_uuid(user.as_uuid())),
            meta,
        )
        .await
}

/// Queues a mail with a fresh one-time token for the account that owns `email`, if there is
/// one. The answer is the same either way (and so is its timing: callers hold it back to the
/// anonymous answer floor).
async fn mail_token(
    services: &Services,
    meta: &RequestMeta,
    action: &'static str,
    email: &str,
    key: Option<&ID>,
    purpose: TokenPurpose,
) -> Result<Accepted, ApiError> {
    services.limiter.attempt(action, &client_key(meta))?;
    let email = parse_email(email)?;
    let index = services.email_index(&email);
    services
        .limiter
        .attempt(action, &format!("account {index}"))?;
    services
        .quotas
        .mails_per_address
        .attempt("mail", &index.to_string())?;
    if let Some(user) = user_by_email(services, &email).await? {
        let ctx_cmd = user_context(services, user, Actor::Anonymous, key, meta).await?;
        let issued = issue_token(
            &services.executor,
            (services.vault.as_ref(), services.credentials.as_ref()),
            &ctx_cmd,
            Utc::now(),
            (user, &email),
            purpose,
        )
        .await;
        match services.counted(User::CATEGORY, issued) {
            // Nothing to issue (already verified): the same answer as for anyone else.
            Ok(_) | Err(ApiError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Accepted { accepted: true })
}

async fn sign_up_answer(
    services: &Services,
    meta: &RequestMeta,
    input: SignUpInput,
    key: Option<&ID>,
) -> Result<SignUpPayload, ApiError> {
    services.limiter.attempt("sign_up", &client_key(meta))?;
    let email = parse_email(&input.email)?;
    let password = NewPassword::parse(&input.password)?;
    let _hashing = services.hashing_slot()?;
    let key = idempotency(key)?;
    let email_index = services.email_index(&email);
    services
        .limiter
        .attempt("sign_up_account", &email_index.to_string())?;
    services
        .quotas
        .mails_per_address
        .attempt("mail", &email_index.to_string())?;
    // Anonymous keys are scoped by the address: the same key with another address is
    // another request, never a replay of someone else's sign-up.
    let ctx_cmd = services
        .context(Actor::Anonymous, email_index, key, None, meta)
        .await?;
    let user = UserId::from_uuid(ctx_cmd.new_id("user"));
    // The IP is sealed under the key of the account the address will belong to.
    let owner = user_by_email(services, &email).await?.unwrap_or(user);
    let ctx_cmd = services
        .with_sealed_ip(ctx_cmd, SubjectId::from_uuid(owner.as_uuid()), meta)
        .await?;
    let signed_up = services.counted(
        User::CATEGORY,
        sign_up(
            &services.executor,
            services.vault.as_ref(),
            services.credentials.as_ref(),
            &ctx_cmd,
            Utc::now(),
            SignUp {
                user,
                email,
                password,
            },
        )
        .await,
    )?;
    Ok(SignUpPayload {
        accepted: true,
        position: signed_up.outcome.position.0.to_string(),
    })
}

#[derive(Default)]
pub struct IdentityMutation;

#[Object]
impl IdentityMutation {
    /// Creates an account and e-mails a verification token; log-in needs a verified address.
    /// For an address that has an account the answer is the same, and so is its timing: an
    /// unverified account's pending password is replaced and a new token mailed, a verified
    /// account's owner is told by e-mail that someone tried.
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        input: SignUpInput,
        idempotency_key: Option<ID>,
    ) -> GqlResult<SignUpPayload> {
        let (services, meta) = (services(ctx), meta(ctx));
        let answer = sign_up_answer(services, &meta, input, idempotency_key.as_ref());
        Ok(services.no_sooner_than_the_floor(answer).await?)
    }

    /// Confirms the e-mail address with the token from the verification e-mail.
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        token: String,
        #[graphql(
            desc = "The password given at sign-up (it stays), or a new one that replaces it: \
                    verifying proves the mailbox, and only a password its holder knows stays valid."
        )]
        password: String,
        idempotency_key: Option<ID>,
    ) -> GqlResult<Done> {
        let (services, meta) = (services(ctx), meta(ctx));
        services
            .limiter
            .attempt("verify_email", &client_key(&meta))?;
        let token = parse_user_token(&token)?;
        let _hashing = services.hashing_slot()?;
        let ctx_cmd = user_context(
            services,
            token.user,
            Actor::Anonymous,
            idempotency_key.as_ref(),
            &meta,
        )
        .await?;
        let outcome = services.counted(
            User::CATEGORY,
            verify_email(
                &services.executor,
                services.credentials.as_ref(),
                &ctx_cmd,
                Utc::now(),
                &token,
                &password,
            )
            .await,
        )?;
        Ok(Done {
            position: outcome.position.0.to_string(),
        })
    }

    /// Sends a new verification e-mail (if the address belongs to an unverified account).
    async fn resend_verification_email(
        &self,
        ctx: &Context<'_>,
        email: String,
        idempotency_key: Option<ID>,
    ) -> GqlResult<Accepted> {
        let (services, meta) = (services(ctx), meta(ctx));
        let answer = mail_token(
            services,
            &meta,
            "resend_verification",
            &email,
            idempotency_key.as_ref(),
            TokenPurpose::Verification,
        );
        Ok(services.no_sooner_than_the_floor(answer).await?)
    }

    /// E-mails a password-reset token (if the address belongs to an account).
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        email: String,
        idempotency_key: Option<ID>,
    ) -> GqlResult<Accepted> {
        let (services, meta) = (services(ctx), meta(ctx));
        let answer = mail_token(
            services,
            &meta,
            "password_reset",
            &email,
            idempotency_key.as_ref(),
            TokenPurpose::PasswordReset,
        );
        Ok(services.no_sooner_than_the_floor(answer).await?)
    }

    /// Sets a new password with the token from the reset e-mail; every session ends.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password: String,
        idempotency_key: Option<ID>,
    ) -> GqlResult<Done> {
        let (services, meta) = (services(ctx), meta(ctx));
        services
            .limiter
            .attempt("password_reset", &client_key(&meta))?;
        let password = NewPassword::parse(&new_password)?;
        let token = parse_user_token(&token)?;
        let _hashing = services.hashing_slot()?;
        let ctx_cmd = user_context(
            services,
            token.user,
            Actor::Anonymous,
            idempotency_key.as_ref(),
            &meta,
        )
        .await?;
        let outcome = services.counted(
            User::CATEGORY,
            reset_password(
                &services.executor,
                services.credentials.as_ref(),
                &ctx_cmd,
                Utc::now(),
                &token,
                &password,
            )
            .await,
        )?;
        Ok(Done {
            position: outcome.position.0.to_string(),
        })
    }
}
