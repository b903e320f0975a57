//! End-to-end: the real `tenantry` binary, started the way the README says.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use support::{Server, get_json, temp_dir, tenantry};

#[tokio::test]
async fn serves_health_and_readiness_on_the_embedded_default_with_no_configuration() {
    let dir = temp_dir();
    let server = Server::start(tenantry(&dir));

    let (status, body) = get_json(&server.url("/healthz")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    let (status, body) = get_json(&server.url("/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "ok");
    assert!(
        dir.join("data/tenantry.db").exists(),
        "the embedded default keeps its data in ./data"
    );

    let (exit, logs) = server.terminate();
    assert!(exit.success(), "exit {exit:?}; logs {logs:#?}");
    assert!(
        logs.iter().any(|l| l.contains("SIGTERM received")),
        "{logs:#?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("shut down cleanly")),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn a_restart_keeps_the_embedded_database() {
    let dir = temp_dir();
    let first = Server::start(tenantry(&dir));
    let (exit, _) = first.terminate();
    assert!(exit.success());
    let second = Server::start(tenantry(&dir));
    let (status, _) = get_json(&second.url("/readyz")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn serves_on_postgres_configured_by_environment() {
    let url = infra::testing::fresh_pg_url().await;
    let mut cmd = tenantry(&temp_dir());
    cmd.env("TENANTRY_DATABASE_URL", &url);
    let server = Server::start(cmd);
    let (status, body) = get_json(&server.url("/readyz")).await;
    assert_eq!(status, 200, "{body}");
    // Migrations ran on start.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('events', 'event_commands')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 2);
}

#[tokio::test]
async fn readiness_fails_but_serving_goes_on_when_the_database_disappears() {
    let url = infra::testing::fresh_pg_url().await;
    let mut cmd = tenantry(&temp_dir());
    cmd.args(["--database-url", &url]);
    let server = Server::start(cmd);
    assert_eq!(get_json(&server.url("/readyz")).await.0, 200);

    let name = url.rsplit('/').next().unwrap();
    let admin = sqlx::PgPool::connect(&infra::testing::pg_admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();

    let (status, body) = get_json(&server.url("/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "unreachable");
    let text = body.to_string();
    assert!(
        !text.contains("sqlx") && !text.contains("error returned"),
        "leaks internals: {text}"
    );
    assert_eq!(get_json(&server.url("/healthz")).await.0, 200);
}

#[tokio::test]
async fn migrate_applies_the_migrations_and_exits() {
    let url = infra::testing::fresh_pg_url().await;
    let out = tenantry(&temp_dir())
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(applied >= 1);
    // Running it again is a no-op, not an error.
    let again = tenantry(&temp_dir())
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(again.status.success());
}

/// The master key on the command line would be readable by every user of the machine (the
/// process list): refused, without echoing it; the environment and the key file work.
#[test]
fn the_master_key_is_refused_on_the_command_line() {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    for flag in ["--master-key", "--master-key="] {
        let mut cmd = tenantry(&temp_dir());
        if flag.ends_with('=') {
            cmd.args(["serve", &format!("{flag}{key}")]);
        } else {
            cmd.args(["serve", flag, key]);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{flag} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--master-key"), "{stderr}");
        assert!(!stderr.contains(key), "the key was echoed: {stderr}");
    }
}

#[test]
fn a_bad_database_url_is_a_clear_error_that_does_not_print_the_password() {
    let out = tenantry(&temp_dir())
        .args([
            "migrate",
            "--database-url",
            "mysql://app:hunter2@db.example/x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unsupported database URL scheme"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "password printed: {stderr}");
}

#[test]
fn an_unreachable_postgres_is_a_clear_error_that_does_not_print_the_password() {
    let out = tenantry(&temp_dir())
        .args([
            "migrate",
            "--database-url",
            "postgres://app:hunter2@127.0.0.1:1/x",
        ])
        .env("TENANTRY_DATABASE_URL", "ignored")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not connect to the database"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "password printed: {stderr}");
}
