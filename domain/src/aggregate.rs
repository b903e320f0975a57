//! The shape every aggregate has: a pure `decide` that turns a command into events and a pure
//! `evolve` that folds an event into the state. How events are stored (type name + JSON
//! payload + schema version) and upgraded on read (upcasters) is defined here too.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;

/// An event-sourced aggregate. Implementations do no I/O, read no clock and make no ids:
/// everything they need arrives on the command.
pub trait Aggregate:
    Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The stream category: streams are named `<CATEGORY>-<uuid>`.
    const CATEGORY: &'static str;
    /// Bumped whenever the serialized state changes shape; older snapshots are ignored.
    const SNAPSHOT_VERSION: u32 = 1;

    type Command: Send + Sync;
    /// An externally tagged serde enum with struct variants: `{"TenantRenamed": {...}}`.
    type Event: Serialize + DeserializeOwned + Clone + Send + Sync;
    type Error: std::error::Error + Send + Sync + 'static;

    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
    fn evolve(&mut self, event: &Self::Event);

    /// The current schema version of each event type (1 unless it changed).
    fn schema_version(_event_type: &str) -> u32 {
        1
    }

    /// Upgrades stored events written under older schema versions.
    fn upcasters() -> Upcasters {
        Upcasters::default()
    }
}

/// Why a stored event could not be turned back into a domain event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    #[error("event {event_type} v{version}: no upcaster to v{wanted}")]
    NoUpcaster {
        event_type: String,
        version: u32,
        wanted: u32,
    },
    #[error("event {event_type} v{version} is newer than this build understands (v{known})")]
    FromTheFuture {
        event_type: String,
        version: u32,
        known: u32,
    },
    #[error("event {event_type}: {reason}")]
    Payload { event_type: String, reason: String },
    #[error("an event must serialize as {{\"Type\": {{...}}}}: {0}")]
    Shape(String),
}

/// Splits a domain event into its stored form: the variant name and its JSON object.
pub fn encode_event<E: Serialize>(event: &E) -> Result<(String, Value), EventDecodeError> {
    match serde_json::to_value(event) {
        Ok(Value::Object(map)) if map.len() == 1 => {
            let (event_type, payload) = map
                .into_iter()
                .next()
                .ok_or_else(|| EventDecodeError::Shape("empty object".into()))?;
            Ok((event_type, payload))
        }
        Ok(other) => Err(EventDecodeError::Shape(other.to_string())),
        Err(e) => Err(EventDecodeError::Shape(e.to_string())),
    }
}

/// Rebuilds a domain event from its stored form, upcasting it to the current schema first.
pub fn decode_event<A: Aggregate>(
    event_type: &str,
    schema_version: u32,
    payload: Value,
) -> Result<A::Event, EventDecodeError> {
    let payload = A::upcasters().upcast(
        event_type,
        schema_version,
        A::schema_version(event_type),
        payload,
    )?;
    let mut tagged = serde_json::Map::with_capacity(1);
    tagged.insert(event_type.to_owned(), payload);
    serde_json::from_value(Value::Object(tagged)).map_err(|e| EventDecodeError::Payload {
        event_type: event_type.to_owned(),
        reason: e.to_string(),
    })
}

type UpcastFn = fn(Value) -> Value;

/// Registered upgrades of stored payloads, one step at a time: (type, v) → v + 1.
#[derive(Debug, Default, Clone)]
pub struct Upcasters {
    steps: HashMap<(String, u32), UpcastFn>,
}

impl Upcasters {
    /// Registers the step that turns `event_type` at `from_version` into `from_version + 1`.
    #[must_use]
    pub fn register(mut self, event_type: &str, from_version: u32, step: UpcastFn) -> Self {
        self.steps
            .insert((event_type.to_owned(), from_version), step);
        self
    }

    /// Applies steps until the payload is at `wanted`.
    pub fn upcast(
        &self,
        event_type: &str,
        mut version: u32,
        wanted: u32,
        mut payload: Value,
    ) -> Result<Value, EventDecodeError> {
        if version > wanted {
            return Err(EventDecodeError::FromTheFuture {
                event_type: event_type.to_owned(),
                version,
                known: wanted,
            });
        }
        while version < wanted {
            let step = self
                .steps
                .get(&(event_type.to_owned(), version))
                .ok_or_else(|| EventDecodeError::NoUpcaster {
                    event_type: event_type.to_owned(),
                    version,
                    wanted,
                })?;
            payload = step(payload);
            version += 1;
        }
        Ok(payload)
    }
}

/// The state after `events`, from the default.
pub fn replay<'a, A: Aggregate>(events: impl IntoIterator<Item = &'a A::Event>) -> A {
    let mut state = A::default();
    for event in events {
        state.evolve(event);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Ev {
        Renamed { name: String },
        Reset {},
    }

    #[test]
    fn events_are_stored_as_type_and_object_payload() {
        let (t, p) = encode_event(&Ev::Renamed { name: "a".into() }).expect("encode");
        assert_eq!((t.as_str(), p), ("Renamed", json!({ "name": "a" })));
        let (t, p) = encode_event(&Ev::Reset {}).expect("encode");
        assert_eq!((t.as_str(), p), ("Reset", json!({})));
    }

    #[test]
    fn upcasters_run_step_by_step_and_refuse_gaps_and_the_future() {
        let ups = Upcasters::default()
            .register("Renamed", 1, |mut v| {
                v["name"] = json!(v["title"].take());
                v
            })
            .register("Renamed", 2, |mut v| {
                v["upper"] = json!(true);
                v
            });
        let out = ups
            .upcast("Renamed", 1, 3, json!({ "title": "x" }))
            .expect("upcast");
        assert_eq!(out["name"], "x");
        assert_eq!(out["upper"], true);
        assert!(matches!(
            ups.upcast("Other", 1, 2, json!({})),
            Err(EventDecodeError::NoUpcaster { .. })
        ));
        assert!(matches!(
            ups.upcast("Renamed", 4, 3, json!({})),
            Err(EventDecodeError::FromTheFuture { .. })
        ));
    }
}
