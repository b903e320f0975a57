//! Who asked, and why: the metadata every command carries from the edge to its events.

use domain::event::{Actor, EventMetadata, RecordedEvent};
use domain::ids::{CommandId, CorrelationId, EventId, TenantId};
use uuid::Uuid;

/// Namespace for command ids derived from causing events (UUIDv5).
const DERIVED_COMMANDS: Uuid = Uuid::from_u128(0x6f1c_2a9e_8d4b_4c1a_9e57_3b0d_21c4_7a10);

/// Namespace for command ids derived from a caller's idempotency key (UUIDv5).
const IDEMPOTENCY: Uuid = Uuid::from_u128(0x0b5e_7c1d_44a2_4f0e_b1c9_52d8_6e3a_9f17);

#[derive(Debug, Clone, PartialEq)]
pub struct CommandContext {
    /// Identifies the command: executing the same id twice appends once.
    pub command_id: CommandId,
    pub correlation_id: CorrelationId,
    /// The event that caused this command, when a reactor issued it.
    pub causation_id: Option<EventId>,
    pub actor: Actor,
    pub source_ip: Option<String>,
    /// The tenant the written events belong to.
    pub tenant_id: Option<TenantId>,
    /// Whether the command id is derived (from an idempotency key or a causing event), so ids
    /// of new objects must derive from it too for a retry to name the same objects.
    pub derived: bool,
    /// A digest of the request's arguments, when it came with an idempotency key: a retry of
    /// the key with other arguments is refused (`CommandError::IdempotencyKeyReused`).
    pub fingerprint: Option<String>,
}

impl CommandContext {
    /// A new command with fresh ids (for a request that brought no idempotency key).
    pub fn new(actor: Actor) -> Self {
        Self {
            command_id: CommandId::new_v7(),
            correlation_id: CorrelationId::new_v7(),
            causation_id: None,
            actor,
            source_ip: None,
            tenant_id: None,
            derived: false,
            fingerprint: None,
        }
    }

    /// A command from the edge (GraphQL, CLI). With an idempotency key its id is derived from
    /// the caller, the operation and the key, so two callers' keys, or one key used for two
    /// operations, never meet; without one it is fresh.
    pub fn from_request(actor: Actor, caller: Uuid, operation: &str, key: Option<Uuid>) -> Self {
        let ctx = Self::new(actor);
        match key {
            Some(key) => {
                let mut seed = caller.as_bytes().to_vec();
                seed.extend_from_slice(key.as_bytes());
                seed.extend_from_slice(operation.as_bytes());
                ctx.with_command_id(CommandId::from_uuid(Uuid::new_v5(&IDEMPOTENCY, &seed)))
            }
            None => ctx,
        }
    }

    /// The id of a new object this command creates (`what` tells several apart): derived from
    /// a derived command id, so a retry creates the same object; else a fresh UUIDv7.
    pub fn new_id(&self, what: &str) -> Uuid {
        if self.derived {
            Uuid::new_v5(&self.command_id.as_uuid(), what.as_bytes())
        } else {
            Uuid::now_v7()
        }
    }

    /// A command issued by a reactor because of `cause`. Its id is derived from the causing
    /// event and the reactor's name, so a redelivered event never doubles the effect.
    pub fn caused_by(cause: &RecordedEvent, reactor: &str) -> Self {
        Self::caused_by_id(
            cause.event_id,
            cause.metadata.correlation_id,
            cause.tenant_id,
            reactor,
        )
    }

    /// [`Self::caused_by`] for a cause known by its ids (kept in a read model, say).
    pub fn caused_by_id(
        cause: EventId,
        correlation: Option<CorrelationId>,
        tenant: Option<TenantId>,
        reactor: &str,
    ) -> Self {
        let mut seed = cause.as_uuid().as_bytes().to_vec();
        seed.extend_from_slice(reactor.as_bytes());
        Self {
            command_id: CommandId::from_uuid(Uuid::new_v5(&DERIVED_COMMANDS, &seed)),
            correlation_id: correlation.unwrap_or_else(CorrelationId::new_v7),
            causation_id: Some(cause),
            actor: Actor::system(reactor),
            source_ip: None,
            tenant_id: tenant,
            derived: true,
            fingerprint: None,
        }
    }

    /// Uses a client-supplied idempotency key as the command id.
    #[must_use]
    pub fn with_command_id(mut self, id: CommandId) -> Self {
        self.command_id = id;
        self.derived = true;
        self
    }

    #[must_use]
    pub fn for_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant_id = Some(tenant);
        self
    }

    #[must_use]
    pub fn from_ip(mut self, ip: impl Into<String>) -> Self {
        self.source_ip = Some(ip.into());
        self
    }

    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            command_id: Some(self.command_id),
            correlation_id: Some(self.correlation_id),
            causation_id: self.causation_id,
            actor: self.actor.clone(),
            source_ip: self.source_ip.clone(),
            request_fingerprint: self.fingerprint.clone(),
        }
    }

    /// Records the digest of the request's arguments (see [`Self::fingerprint`]).
    #[must_use]
    pub fn with_fingerprint(mut self, fingerprint: Option<String>) -> Self {
        self.fingerprint = fingerprint;
        self
    }
}
