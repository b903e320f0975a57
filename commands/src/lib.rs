//! The write path. [`Executor::execute`] is the only way events are written: it loads an
//! aggregate (from a snapshot plus the stream's tail where a snapshot exists), runs its pure
//! `decide`, appends with the exact expected version and retries a bounded number of times on
//! conflict. [`Executor::execute_with`] does the same for a decision that spans two
//! aggregates, appended atomically (how per-tenant limits hold under concurrency).
//!
//! Every command carries a [`CommandContext`]: its command id (which makes it idempotent, also
//! across restarts), correlation and causation ids, actor and source IP.
//!
//! The use cases, one module per area ([`identity`] and [`sessions`], [`tenancy`], [`access`], [`billing`],
//! and the [`mail`] outbox), are what the edges (GraphQL,
//! the CLI, jobs and reactors) call: typed input, the context and the clock passed in, an
//! error enum per use case. Nothing else writes.
//!
//! This crate depends on `domain` only (ports, not adapters), and never on `projections`.

pub mod access;
pub mod audit;
pub mod billing;
mod context;
mod execute;
pub mod freshness;
pub mod identity;
pub mod mail;
pub mod metering;
pub mod payments;
pub mod privacy;
pub mod sessions;
pub mod tenancy;
pub mod webhooks;

pub use context::CommandContext;
pub use execute::{
    AsOf, Claim, CommandError, CommandOutcome, ExecutePolicy, Executor, LoadError, Loaded,
};
