//! The arrows of DESIGN.md, checked against `cargo metadata`:
//! `domain` ← `commands` / `projections` ← `infra` ← `api` ← the binary.
#![expect(clippy::unwrap_used, reason = "tests")]

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Normal (non-dev, non-build), non-optional dependencies of each workspace package.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let deps = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null() && !d["optional"].as_bool().unwrap_or(false))
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (package["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

/// Crates that talk to the outside world (databases, HTTP, runtimes, SDKs).
const IO_CRATES: &[&str] = &[
    "sqlx",
    "tokio",
    "axum",
    "hyper",
    "reqwest",
    "tower",
    "tower-http",
    "async-graphql",
    "async-graphql-axum",
    "clap",
    "lettre",
    "eventstore",
    "kurrentdb",
    "async-stripe",
    "stripe",
    "aws-sdk-s3",
    "aws-config",
    "mongodb",
    "tracing-subscriber",
];

fn is_sdk(name: &str) -> bool {
    matches!(name, "eventstore" | "kurrentdb" | "mongodb" | "aws-config")
        || name.starts_with("async-stripe")
        || name.starts_with("stripe")
        || name.starts_with("aws-sdk-")
}

#[test]
fn arrows_point_one_way() {
    let deps = dependencies();
    let of = |p: &str| deps.get(p).unwrap_or_else(|| panic!("package {p} missing"));

    let domain = of("tenantry-domain");
    let io: Vec<_> = domain
        .iter()
        .filter(|d| IO_CRATES.contains(&d.as_str()))
        .collect();
    assert!(
        io.is_empty(),
        "domain must do no I/O, but depends on {io:?}"
    );
    assert!(
        !domain.iter().any(|d| d.starts_with("tenantry")),
        "domain depends on {domain:?}"
    );

    for (a, b) in [
        ("tenantry-commands", "tenantry-projections"),
        ("tenantry-projections", "tenantry-commands"),
    ] {
        assert!(!of(a).contains(b), "{a} must not depend on {b}");
    }
    for lower in [
        "tenantry-domain",
        "tenantry-commands",
        "tenantry-projections",
        "tenantry-infra",
    ] {
        for upper in ["tenantry-api", "tenantry"] {
            assert!(
                !of(lower).contains(upper),
                "{lower} must not depend on {upper}"
            );
        }
    }
    for (package, list) in &deps {
        if package != "tenantry-infra" {
            let sdks: Vec<_> = list.iter().filter(|d| is_sdk(d)).collect();
            assert!(
                sdks.is_empty(),
                "{package} names SDK crates {sdks:?}; only infra may"
            );
        }
        if !matches!(package.as_str(), "tenantry-api" | "tenantry") {
            for web in ["axum", "async-graphql", "clap"] {
                assert!(
                    !list.contains(web),
                    "{package} names {web}; only api and the binary may"
                );
            }
        }
    }
}
