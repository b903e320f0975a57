//! End-to-end: tenant commands from the CLI go through the write path, while a running server
//! projects them; reads can wait for a command's position.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use std::path::Path;
use std::process::Output;
use support::{Server, temp_dir, tenantry};

fn cli(dir: &Path, args: &[&str]) -> Output {
    tenantry(dir).args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `tenant <id> version <v> position <p>` → (id, p)
fn outcome(stdout: &str) -> (String, String) {
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(
        (words[0], words[2], words[4]),
        ("tenant", "version", "position"),
        "{stdout}"
    );
    (words[1].to_owned(), words[5].to_owned())
}

fn head(dir: &Path) -> String {
    let status = ok(&cli(dir, &["projections", "status"]));
    status
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn the_tenant_lifecycle_from_the_cli() {
    let dir = temp_dir();
    let _server = Server::start(tenantry(&dir));
    let key = uuid::Uuid::now_v7().to_string();

    let first = ok(&cli(
        &dir,
        &[
            "tenants",
            "provision",
            "--name",
            "Acme Backups",
            "--slug",
            "acme",
            "--setting",
            "region=eu",
            "--idempotency-key",
            &key,
        ],
    ));
    let (id, position) = outcome(&first);
    // The same key again: nothing written, the first outcome.
    let again = ok(&cli(
        &dir,
        &[
            "tenants",
            "provision",
            "--name",
            "Acme Backups",
            "--slug",
            "acme",
            "--idempotency-key",
            &key,
        ],
    ));
    assert!(again.contains("already done"), "{again}");
    assert_eq!(outcome(&again), (id.clone(), position.clone()));

    let shown = ok(&cli(
        &dir,
        &["tenants", "show", &id, "--wait-for", &position],
    ));
    assert!(
        shown.contains("active") && shown.contains("acme") && shown.contains("Acme Backups"),
        "{shown}"
    );
    assert!(shown.contains(r#"{"region":"eu"}"#), "{shown}");

    let (_, position) = outcome(&ok(&cli(
        &dir,
        &["tenants", "rename", &id, "--name", "Acme Ltd"],
    )));
    assert!(
        ok(&cli(
            &dir,
            &["tenants", "show", &id, "--wait-for", &position]
        ))
        .contains("Acme Ltd")
    );
    let (_, position) = outcome(&ok(&cli(
        &dir,
        &["tenants", "suspend", &id, "--reason", "unpaid invoice"],
    )));
    assert!(
        ok(&cli(
            &dir,
            &["tenants", "show", &id, "--wait-for", &position]
        ))
        .contains("suspended")
    );
    let (_, position) = outcome(&ok(&cli(&dir, &["tenants", "reactivate", &id])));
    let listed = ok(&cli(&dir, &["tenants", "list", "--wait-for", &position]));
    assert_eq!(listed.lines().count(), 1);
    assert!(listed.contains("active"), "{listed}");

    // Bad input: a clear error, nothing written.
    let before = head(&dir);
    let bad = cli(
        &dir,
        &[
            "tenants",
            "provision",
            "--name",
            "Bad",
            "--slug",
            "Not A Slug",
        ],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("slug must be"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let refused = cli(&dir, &["tenants", "reactivate", &id]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not suspended"));
    assert_eq!(head(&dir), before);

    // Waiting for a position nobody wrote ends in a clear error, not stale data.
    let late = cli(
        &dir,
        &[
            "tenants",
            "show",
            &id,
            "--wait-for",
            "999999",
            "--timeout-ms",
            "50",
        ],
    );
    assert!(!late.status.success());
    assert!(
        String::from_utf8_lossy(&late.stderr).contains("not yet at 999999"),
        "{}",
        String::from_utf8_lossy(&late.stderr)
    );
}
