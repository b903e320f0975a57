#![expect(
    missing_debug_implementations,
    reason = "GraphQL object and input types: inputs carry passwords and tokens that must never be printed"
)]

//! The GraphQL schema: one query, mutation and subscription object per area, merged.
//! [`identity`]: accounts; [`sessions`]: log-in, passwords, TOTP. [`tenancy`]: tenants' queries and mutations, [`tenant`] and
//! [`members`]: the objects every tenant view shares; [`access`]: members, invites, API keys; [`live`]:
//! subscriptions. Lists are Relay connections ([`connection`]) loaded through per-request
//! DataLoaders ([`loaders`]).

pub mod access;
pub mod connection;
pub mod identity;
pub mod live;
pub mod loaders;
pub mod members;
pub mod sessions;
pub mod tenancy;
pub mod tenant;

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
        });
    meta.operation = ctx.field().name().to_owned();
    meta
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
