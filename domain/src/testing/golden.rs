//! Golden files for stored events (feature `testing`): `domain/tests/golden/<category>/
//! <EventType>.json` holds the stored form of one event (type, schema version, payload)
//! exactly as a store keeps it. [`check`] asserts that each example decodes from its file to
//! the very same value and encodes back to the same type and payload, that every variant
//! serde derives has an example and a file, and that no file names a variant that is gone.
//! Each aggregate's test is a file of its own (`domain/tests/golden_<area>.rs`) that lists an
//! example per variant and names each one's file with an exhaustive `match`.
//!
//! `TENANTRY_GOLDEN_WRITE=1` writes the files of new variants; it never overwrites one.
use crate::aggregate::{Aggregate, decode_event, encode_event};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

pub fn check<A>(examples: Vec<A::Event>, file_of: fn(&A::Event) -> &'static str)
where
    A: Aggregate,
    A::Event: PartialEq + Debug,
{
    let problems = problems::<A>(&examples, file_of);
    assert!(
        problems.is_empty(),
        "stored events of `{}` no longer match their golden files:\n{}",
        A::CATEGORY,
        problems.join("\n")
    );
}

/// Everything wrong with `examples` against the variant list and the files on disk.
pub fn problems<A>(examples: &[A::Event], file_of: fn(&A::Event) -> &'static str) -> Vec<String>
where
    A: Aggregate,
    A::Event: PartialEq + Debug,
{
    let dir = golden_dir::<A>();
    let mut problems = vec![];

    let variants: BTreeSet<&str> = variant_names::<A::Event>().iter().copied().collect();
    let named: Vec<&str> = examples.iter().map(file_of).collect();
    let named_set: BTreeSet<&str> = named.iter().copied().collect();
    if named_set.len() != named.len() {
        problems.push(format!("two examples share a golden file: {named:?}"));
    }
    for missing in variants.difference(&named_set) {
        problems.push(format!(
            "{missing}: no example value (add one and its file)"
        ));
    }
    for file in files_in(&dir) {
        if !variants.contains(file.as_str()) {
            problems.push(format!("{file}.json: no such event variant any more"));
        }
    }

    for (event, file) in examples.iter().zip(named) {
        let path = dir.join(format!("{file}.json"));
        if let Err(problem) = check_one::<A>(event, file, &path) {
            problems.push(format!("{file}: {problem}"));
        }
    }
    problems
}

pub fn check_one<A>(event: &A::Event, file: &str, path: &Path) -> Result<(), String>
where
    A: Aggregate,
    A::Event: PartialEq + Debug,
{
    let (event_type, payload) = encode_event(event).map_err(|e| format!("encode: {e}"))?;
    if event_type != file {
        return Err(format!("encodes as type {event_type}, not {file}"));
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(_) if std::env::var_os("TENANTRY_GOLDEN_WRITE").is_some() => {
            let stored = json!({
                "type": event_type,
                "schema_version": A::schema_version(&event_type),
                "payload": payload,
            });
            let text = serde_json::to_string_pretty(&stored).map_err(|e| e.to_string())? + "\n";
            std::fs::create_dir_all(path.parent().unwrap_or(path)).map_err(|e| e.to_string())?;
            std::fs::write(path, &text).map_err(|e| format!("write {}: {e}", path.display()))?;
            text
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let stored: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let golden_type = stored["type"].as_str().unwrap_or_default();
    let version = stored["schema_version"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or("schema_version must be a number")?;
    let golden_payload = stored["payload"].clone();

    if golden_type != file {
        return Err(format!("the file says type {golden_type}"));
    }
    if version != A::schema_version(file) {
        return Err(format!(
            "stored at schema v{version}, the aggregate writes v{}: keep this file as the old \
             version's and add one for the new",
            A::schema_version(file)
        ));
    }
    let decoded = decode_event::<A>(file, version, golden_payload.clone())
        .map_err(|e| format!("the golden payload no longer decodes: {e}"))?;
    if &decoded != event {
        return Err(format!("decodes to\n  {decoded:?}\nnot\n  {event:?}"));
    }
    if payload != golden_payload {
        return Err(format!(
            "encodes as\n  {payload}\nnot as stored\n  {golden_payload}"
        ));
    }
    Ok(())
}

pub fn golden_dir<A: Aggregate>() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(A::CATEGORY)
}

/// The golden files present for one aggregate, by event type.
fn files_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p: PathBuf| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    files.sort();
    files
}

/// The variant names serde derived for an enum, read by asking it to deserialize from a
/// deserializer that records the list it is handed and then gives up.
fn variant_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Recorder<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Recorder<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not an enum"))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = variants;
            Err(de::Error::custom("recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
            ignored_any
        }
    }

    let mut variants: &'static [&'static str] = &[];
    let _ = T::deserialize(Recorder(&mut variants));
    variants
}
