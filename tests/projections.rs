//! End-to-end: projections in the real binary. `serve` projects the log; `projections status`
//! and `projections rebuild` work from the CLI; a SIGKILL in the middle of a load loses and
//! doubles nothing.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use commands::{CommandContext, Executor};
use domain::event::Actor;
use domain::ids::TenantId;
use domain::tenant::{Slug, Tenant, TenantCommand, TenantName, TenantSettings};
use infra::database::{Database, DatabaseOptions};
use projections::read_your_writes::wait_for;
use projections::tenant_directory::TenantDirectory;
use projections::{Projector, ReadDb};
use std::process::Command;
use std::time::Duration;
use support::{Server, temp_dir, tenantry};

fn read_db(db: &Database) -> ReadDb {
    match db {
        Database::Sqlite(s) => ReadDb::Sqlite {
            writer: s.writer.clone(),
            reader: s.reader.clone(),
        },
        Database::Postgres(pool) => ReadDb::Postgres(pool.clone()),
    }
}

async fn provision_many(exec: &Executor, n: usize) -> Vec<TenantId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let tenant = TenantId::new_v7();
        let cmd = TenantCommand::Provision {
            tenant_id: tenant,
            name: TenantName::parse(&format!("Tenant {i}")).unwrap(),
            slug: Slug::parse(&format!("t-{i}")).unwrap(),
            settings: TenantSettings::default(),
            at: chrono::Utc::now(),
        };
        exec.execute::<Tenant>(
            tenant.as_uuid(),
            &cmd,
            &CommandContext::new(Actor::system("e2e")).for_tenant(tenant),
        )
        .await
        .unwrap();
        ids.push(tenant);
    }
    ids
}

fn run_ok(mut cmd: Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "failed: {stderr}");
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_rebuild_from_the_cli_on_the_embedded_default() {
    let dir = temp_dir();
    let url = format!("sqlite://{}/data/tenantry.db", dir.display());
    let db = Database::open(&url, &DatabaseOptions::default())
        .await
        .unwrap();
    let exec = Executor::new(db.event_store().await.unwrap());
    let tenants = provision_many(&exec, 25).await;
    let head = exec.store().head().await.unwrap();

    let server = Server::start(tenantry(&dir));
    wait_for(
        &read_db(&db),
        &["tenant_directory"],
        head,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let (exit, _) = server.terminate();
    assert!(exit.success());

    let mut status = tenantry(&dir);
    status.args(["projections", "status"]);
    let (stdout, _) = run_ok(status);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("tenant_directory"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols[1..6],
        [
            TenantDirectory.version().to_string().as_str(),
            "1",
            &head.0.to_string(),
            "0",
            "live"
        ],
        "{row}"
    );

    let mut rebuild = tenantry(&dir);
    rebuild.args([
        "projections",
        "rebuild",
        "tenant_directory",
        "--batch-size",
        "7",
    ]);
    let (_, stderr) = run_ok(rebuild);
    assert!(
        stderr.contains("events/s") && stderr.contains("ETA"),
        "{stderr}"
    );
    assert!(stderr.contains("rebuilt tenant_directory"), "{stderr}");

    let mut status = tenantry(&dir);
    status.args(["projections", "status"]);
    let (stdout, _) = run_ok(status);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("tenant_directory"))
        .unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2], "2", "a rebuild makes a new generation: {row}");
    assert_eq!(cols[4], "0", "and catches up to the head: {row}");
    let listed = TenantDirectory::list(&read_db(&db), None, 100)
        .await
        .unwrap();
    assert_eq!(listed.len(), tenants.len());

    let out = tenantry(&dir)
        .args(["projections", "rebuild", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no projection named") && stderr.contains("tenant_directory"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_a_load_neither_loses_nor_doubles_an_effect() {
    let url = infra::testing::fresh_pg_url().await;
    let db = Database::open(&url, &DatabaseOptions::default())
        .await
        .unwrap();
    let read = read_db(&db);
    let exec = Executor::new(db.event_store().await.unwrap());
    provision_many(&exec, 50).await;

    let start = || {
        let mut cmd = tenantry(&temp_dir());
        cmd.env("TENANTRY_DATABASE_URL", &url)
            .env("TENANTRY_PROJECTION_BATCH_SIZE", "5");
        Server::start(cmd)
    };
    let first = start();
    // Load while the server projects; kill it without warning part-way.
    let load = {
        let exec = exec.clone();
        tokio::spawn(async move { provision_many(&exec, 400).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let killed = Command::new("kill")
        .args(["-KILL", &first.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    drop(first);
    let mid = projections::runner::checkpoints(&read).await.unwrap();
    let _second = start();
    load.await.unwrap();
    let head = exec.store().head().await.unwrap();
    assert!(
        mid[0].position < i64::try_from(head.0).unwrap(),
        "the kill came after the projection had finished"
    );
    wait_for(&read, &["tenant_directory"], head, Duration::from_secs(60))
        .await
        .unwrap();
    let survived = TenantDirectory::list(&read, None, 1_000).await.unwrap();
    assert_eq!(survived.len(), 450);

    projections::runner::rebuild(
        exec.store(),
        &read,
        &TenantDirectory,
        Default::default(),
        |_, _| {},
    )
    .await
    .unwrap();
    let rebuilt = TenantDirectory::list(&read, None, 1_000).await.unwrap();
    assert_eq!(survived, rebuilt);
}

/// Waits up to `secs` for a log line containing `needle`.
fn saw(server: &Server, needle: &str, secs: u64) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = server.logs.recv_timeout(Duration::from_millis(100))
            && line.contains(needle)
        {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_projector_and_one_takes_over_when_the_other_dies() {
    let url = infra::testing::fresh_pg_url().await;
    let db = Database::open(&url, &DatabaseOptions::default())
        .await
        .unwrap();
    let read = read_db(&db);
    let exec = Executor::new(db.event_store().await.unwrap());
    let start = || {
        let mut cmd = tenantry(&temp_dir());
        cmd.env("TENANTRY_DATABASE_URL", &url);
        Server::start(cmd)
    };
    let a = start();
    assert!(
        saw(&a, "acquired the projection lease", 10),
        "the first process never took the lease"
    );
    let b = start();
    assert!(
        saw(&b, "standing by", 10),
        "the second process did not stand by"
    );

    provision_many(&exec, 20).await;
    let head = exec.store().head().await.unwrap();
    wait_for(&read, &["tenant_directory"], head, Duration::from_secs(30))
        .await
        .unwrap();

    let killed = Command::new("kill")
        .args(["-KILL", &a.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let died = std::time::Instant::now();
    assert!(
        saw(&b, "acquired the projection lease", 10),
        "the standby never took over"
    );
    let takeover = died.elapsed();
    provision_many(&exec, 20).await;
    let head = exec.store().head().await.unwrap();
    wait_for(&read, &["tenant_directory"], head, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        TenantDirectory::list(&read, None, 100).await.unwrap().len(),
        40
    );
    assert!(
        takeover < Duration::from_secs(5),
        "takeover took {takeover:?}"
    );
}
