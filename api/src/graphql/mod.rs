#![expect(
    missing_debug_implementations,
    reason = "GraphQL object and input types: inputs carry passwords and tokens that must never be printed"
)]

//! The GraphQL schema: one query, mutation and subscription object per area, merged.
//! [`identity`]: accounts; [`sessions`]: log-in, passwords, TOTP. [`tenancy`]: tenants' queries and mutations, [`tenant`] and
//! [`members`]: the objects every tenant view shares; [`access`]: members, invites, API keys; [`billing`]: plans,
//! subscriptions, entitlements; [`live`]:
//! subscriptions. Lists are Relay connections ([`connection`]) loaded through per-request
//! DataLoaders ([`loaders`]).

pub mod access;
pub mod audit;
pub mod billing;
pub mod connection;
pub mod identity;
pub mod live;
pub mod loaders;
pub mod members;
pub mod metering;
pub mod privacy;
pub mod sessions;
pub mod tenancy;
pub mod tenant;
pub mod webhooks;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::services::{RequestMeta, Services};
use async_graphql::{Context, ID, Schema};
use domain::event::Position;
use std::sync::Arc;
use uuid::Uuid;

pub use crate::areas::{MutationRoot, QueryRoot, SubscriptionRoot};

pub type TenantrySchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

pub fn schema(services: Arc<Services>) -> TenantrySchema {
    let config = &services.config;
    let mut builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .limit_depth(config.max_depth)
    .limit_complexity(config.max_complexity)
    .limit_recursive_depth(32)
    .limit_directives(20);
    if !config.introspection {
        builder = builder.disable_introspection();
    }
    builder.data(services).finish()
}

pub(crate) fn services<'a>(ctx: &Context<'a>) -> &'a Arc<Services> {
    ctx.data_unchecked::<Arc<Services>>()
}

pub(crate) fn principal(ctx: &Context<'_>) -> Principal {
    ctx.data_opt::<Principal>()
        .copied()
        .unwrap_or(Principal::Anonymous)
}

pub(crate) fn meta(ctx: &Context<'_>) -> RequestMeta {
    let mut meta = ctx
        .data_opt::<RequestMeta>()
        .cloned()
        .unwrap_or(RequestMeta {
            ip: None,
            request_id: String::new(),
            operation: String::new(),
            fingerprint: None,
        });
    meta.operation = ctx.field().name().to_owned();
    meta.fingerprint = fingerprint(ctx);
    meta
}

/// A digest of the field's arguments with variables resolved, the idempotency key aside, in
/// a canonical form (arguments and object keys sorted): what makes two requests "the same".
fn fingerprint(ctx: &Context<'_>) -> Option<String> {
    fn canonical(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for key in keys {
                    out.push_str(&serde_json::Value::String(key.clone()).to_string());
                    out.push(':');
                    canonical(&map[key], out);
                    out.push(',');
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for item in items {
                    canonical(item, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut arguments = ctx.field().arguments().ok()?;
    arguments.retain(|(name, _)| name.as_str() != "idempotencyKey");
    arguments.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    let mut text = String::new();
    for (name, value) in arguments {
        text.push_str(name.as_str());
        text.push('=');
        canonical(&value.into_json().ok()?, &mut text);
        text.push(';');
    }
    /// Namespace of argument digests (UUIDv5, SHA-1: a fingerprint, not a secret).
    const ARGUMENTS: Uuid = Uuid::from_u128(0x3d4c_81f2_5a6b_4e90_8c1d_7f2e_9a0b_6c53);
    Some(
        Uuid::new_v5(&ARGUMENTS, text.as_bytes())
            .simple()
            .to_string(),
    )
}

/// A UUID argument, or BAD_USER_INPUT naming the argument.
pub(crate) fn uuid_arg(field: &'static str, id: &ID) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| ApiError::bad_input(field, format!("`{field}` is not a valid id")))
}

pub(crate) fn idempotency(key: Option<&ID>) -> Result<Option<Uuid>, ApiError> {
    key.map(|k| uuid_arg("idempotencyKey", k)).transpose()
}

/// A position argument (positions are 64-bit, so they travel as strings).
pub(crate) fn position_arg(
    field: &'static str,
    position: Option<&str>,
) -> Result<Option<Position>, ApiError> {
    position
        .map(|p| {
            p.trim().parse::<u64>().map(Position).map_err(|_| {
                ApiError::bad_input(
                    field,
                    format!("`{field}` must be a position returned by a mutation"),
                )
            })
        })
        .transpose()
}

/// Waits for the read models the query reads (`read_models`) when it asked for a
/// consistency position.
pub(crate) async fn consistent(
    ctx: &Context<'_>,
    at: Option<&str>,
    read_models: &[&str],
) -> Result<(), ApiError> {
    if let Some(position) = position_arg("atPosition", at)? {
        services(ctx).reached(position, read_models).await?;
    }
    Ok(())
}
