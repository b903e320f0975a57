//! What the use-case tests share: a system caller and a fresh tenant.
#![allow(dead_code, reason = "each test file uses what it needs")]
#![expect(clippy::unwrap_used, reason = "tests")]

use chrono::Utc;
use commands::tenancy::{CreateTenant, Founder, create_tenant};
use commands::{CommandContext, Executor};
use domain::event::Actor;
use domain::ids::TenantId;
use domain::tenant::{Slug, TenantName, TenantSettings};

/// A command context of the platform itself, with fresh ids.
pub fn system() -> CommandContext {
    CommandContext::new(Actor::system("test"))
}

/// A new active tenant "Acme" (a unique slug), provisioned by an operator.
pub async fn tenant(exec: &Executor) -> TenantId {
    create_tenant(
        exec,
        &system(),
        Utc::now(),
        CreateTenant {
            name: TenantName::parse("Acme").unwrap(),
            slug: Slug::parse(&format!("t-{}", uuid::Uuid::now_v7().simple())).unwrap(),
            settings: TenantSettings::default(),
            founder: Founder::Operator,
        },
    )
    .await
    .unwrap()
    .tenant
}
