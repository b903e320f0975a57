//! Reactors (process managers): they follow the log like projectors but issue commands. Each
//! command's id is derived from the event that caused it (see
//! [`CommandContext::caused_by`](crate::CommandContext::caused_by)), so a redelivered event, a
//! restart or a second process running the same reactor never doubles an effect.

pub mod tenant_data_retention;
