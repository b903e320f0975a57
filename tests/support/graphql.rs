//! A whole platform for end-to-end tests: the real server on SQLite or PostgreSQL, a real
//! SMTP server (aiosmtpd from PyPI, writing a maildir) and a GraphQL client.

use super::{Server, temp_dir, tenantry};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The master key every test server uses (so tests can sign tokens of their own).
pub const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const OPERATOR: &str = "op@example.com";
pub const PASSWORD: &str = "correct horse battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// aiosmtpd on a port it picks itself (printed on its first line, so no port is chosen
/// before it is bound), storing messages in a maildir. While the `fail` file exists it
/// answers every message with a temporary failure (451), as a mail system that is down
/// would; while the `refuse` file exists, with a permanent one (554). In the `starttls` and
/// `implicit` modes it speaks TLS with the certificate given and requires authentication.
const SMTP_SERVER: &str = r#"
import asyncio, os, ssl, sys
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

maildir, fail, refuse, mode = sys.argv[1:5]

class Handler(Mailbox):
    async def handle_DATA(self, server, session, envelope):
        if os.path.exists(refuse):
            return "554 5.7.1 refused for good by the test"
        if os.path.exists(fail):
            return "451 4.3.0 delivery switched off by the test"
        return await super().handle_DATA(server, session, envelope)

def authenticate(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"tenantry" and data.password == b"p@ss:word"
    return AuthResult(success=ok)

async def main():
    handler = Handler(maildir)
    tls = None
    if mode != "plain":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[5], sys.argv[6])
    if mode == "plain":
        factory = lambda: SMTP(handler)
    elif mode == "starttls":
        factory = lambda: SMTP(handler, tls_context=tls, require_starttls=True,
                               authenticator=authenticate, auth_required=True)
    else:
        factory = lambda: SMTP(handler, authenticator=authenticate, auth_required=True,
                               auth_require_tls=False)
    server = await asyncio.get_running_loop().create_server(
        factory, "127.0.0.1", 0, ssl=tls if mode == "implicit" else None)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"#;

/// How the test SMTP server secures its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    Plain,
    /// STARTTLS required, then AUTH (user `tenantry`, password `p@ss:word`).
    StartTls,
    /// TLS from the first byte, then AUTH.
    Implicit,
}

/// A real SMTP server (aiosmtpd), storing every message it receives in a maildir.
pub struct Smtp {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    fail: PathBuf,
    refuse: PathBuf,
    /// The CA certificate a client must trust (TLS modes).
    pub ca: Option<PathBuf>,
    security: SmtpSecurity,
    read: Mutex<HashSet<PathBuf>>,
}

/// One stored message: its `To:` and `Subject:` headers and its decoded text.
struct Stored {
    path: PathBuf,
    to: String,
    subject: String,
    text: String,
}

impl Smtp {
    pub fn start() -> Self {
        Self::start_secured(SmtpSecurity::Plain)
    }

    /// A server speaking TLS with a certificate for 127.0.0.1 from a CA of its own.
    pub fn start_secured(security: SmtpSecurity) -> Self {
        let root = temp_dir();
        let (dir, fail, refuse) = (root.join("maildir"), root.join("fail"), root.join("refuse"));
        let mut command = Command::new("python3");
        command
            .arg("-c")
            .arg(SMTP_SERVER)
            .arg(&dir)
            .arg(&fail)
            .arg(&refuse);
        let ca = match security {
            SmtpSecurity::Plain => {
                command.arg("plain");
                None
            }
            SmtpSecurity::StartTls | SmtpSecurity::Implicit => {
                // A CA of its own and a server certificate it signed (a CA certificate
                // cannot serve as the server's own: TLS clients refuse that).
                let path = |name: &str| root.join(name);
                let openssl = |args: &[&str]| {
                    let done = Command::new("openssl")
                        .current_dir(&root)
                        .args(args)
                        .stderr(Stdio::null())
                        .status()
                        .expect("run openssl");
                    assert!(done.success(), "openssl {args:?} failed");
                };
                std::fs::write(
                    path("ext.cnf"),
                    "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
                )
                .expect("write ext.cnf");
                openssl(&[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=tenantry test CA",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                ]);
                openssl(&[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "key.pem",
                    "-out",
                    "server.csr",
                ]);
                openssl(&[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "1",
                    "-extfile",
                    "ext.cnf",
                    "-out",
                    "cert.pem",
                ]);
                let (cert, key) = (path("cert.pem"), path("key.pem"));
                command
                    .arg(if security == SmtpSecurity::StartTls {
                        "starttls"
                    } else {
                        "implicit"
                    })
                    .arg(&cert)
                    .arg(&key);
                Some(path("ca.pem"))
            }
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3");
        let mut first = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| BufReader::new(out).read_line(&mut first));
        let port = first.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("aiosmtpd did not start ({read:?}: {first:?}); pip install aiosmtpd")
        });
        Self {
            child,
            port,
            dir,
            fail,
            refuse,
            ca,
            security,
            read: Mutex::new(HashSet::new()),
        }
    }

    /// The `--smtp` URL that reaches this server (with its credentials in TLS modes).
    pub fn url(&self) -> String {
        match self.security {
            SmtpSecurity::Plain => format!("127.0.0.1:{}", self.port),
            SmtpSecurity::StartTls => {
                format!("smtp://tenantry:p%40ss%3Aword@127.0.0.1:{}", self.port)
            }
            SmtpSecurity::Implicit => {
                format!("smtps://tenantry:p%40ss%3Aword@127.0.0.1:{}", self.port)
            }
        }
    }

    /// Makes the server refuse every message for good (554, `true`) or accept them again.
    pub fn set_refusing(&self, refusing: bool) {
        if refusing {
            std::fs::write(&self.refuse, b"").expect("write the refuse switch");
        } else {
            std::fs::remove_file(&self.refuse).expect("remove the refuse switch");
        }
    }

    /// Makes the server fail every message for now (451, a temporary failure: `true`) or
    /// accept them again (`false`).
    pub fn set_failing(&self, failing: bool) {
        if failing {
            std::fs::write(&self.fail, b"").expect("write the fail switch");
        } else {
            std::fs::remove_file(&self.fail).expect("remove the fail switch");
        }
    }

    fn stored(&self) -> Vec<Stored> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("new")) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        // Maildir names are `<seconds>.M<microseconds>P<pid>Q<counter>.<host>`, with the
        // microseconds not zero-padded: sorting by name misorders messages within a second.
        // The counter is the server's own delivery order.
        let delivered = |path: &PathBuf| -> (u64, String) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let counter = name
                .split_once('Q')
                .and_then(|(_, rest)| rest.split('.').next())
                .and_then(|q| q.parse().ok())
                .unwrap_or(u64::MAX);
            (counter, name.to_owned())
        };
        paths.sort_by_key(delivered);
        paths
            .into_iter()
            .filter_map(|path| {
                let text = std::fs::read_to_string(&path).ok()?;
                let header = |name: &str| {
                    text.lines()
                        .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
                        .unwrap_or_default()
                        .to_owned()
                };
                Some(Stored {
                    to: header("to"),
                    subject: header("subject"),
                    text: quoted_printable(&text),
                    path,
                })
            })
            .collect()
    }

    /// How many messages to `to` whose subject contains `subject` were received so far.
    /// Mail goes out through the outbox after the answer: see [`Platform::mail_settled`].
    pub fn count(&self, to: &str, subject: &str) -> usize {
        self.stored()
            .iter()
            .filter(|m| m.to.contains(to) && m.subject.contains(subject))
            .count()
    }

    /// The body of the next unread message to `to` whose subject contains `subject`.
    pub async fn message(&self, to: &str, subject: &str) -> String {
        super::eventually(
            &format!("an e-mail to {to} about {subject:?}"),
            Duration::from_secs(15),
            || async {
                let mut read = self.read.lock().expect("lock");
                let found = self.stored().into_iter().find(|m| {
                    !read.contains(&m.path) && m.to.contains(to) && m.subject.contains(subject)
                })?;
                read.insert(found.path);
                Some(found.text)
            },
        )
        .await
    }

    /// The `Token:` line of the next unread message to `to` about `subject`.
    pub async fn token(&self, to: &str, subject: &str) -> String {
        let text = self.message(to, subject).await;
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Token: "))
            .unwrap_or_else(|| panic!("no token in {text}"))
            .trim()
            .to_owned()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Undoes quoted-printable soft line breaks and `=3D` (long lines arrive encoded).
fn quoted_printable(text: &str) -> String {
    text.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

/// Asserts the response failed with `expected` code and a message mentioning `about`
/// (case-insensitively).
pub fn assert_refused(response: &Value, expected: &str, about: &str) {
    assert_eq!(code(response), Some(expected), "{response}");
    let message = response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.to_lowercase().contains(&about.to_lowercase()),
        "{response}"
    );
}

/// `errors[0].extensions.code`, if any.
pub fn code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

impl Api {
    /// The same API, called from another loopback address (127.0.0.0/8 is all local on
    /// Linux), which the server sees as another client IP.
    pub fn at_ip(&self, ip: [u8; 4]) -> Api {
        Api {
            base: self.base.clone(),
            client: reqwest::Client::builder()
                .local_address(std::net::IpAddr::from(ip))
                .build()
                .expect("HTTP client"),
        }
    }

    pub async fn post(&self, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    /// The whole response.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.post(token, &json!({"query": query, "variables": variables}))
            .await
            .1
    }

    /// `data`, asserting there were no errors.
    pub async fn ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let response = self.gql(token, query, variables).await;
        assert!(response.get("errors").is_none(), "{query}\n=> {response:#}");
        response["data"].clone()
    }

    /// The error code of a request that must fail.
    pub async fn fails(&self, token: Option<&str>, query: &str, variables: Value) -> String {
        let response = self.gql(token, query, variables).await;
        code(&response)
            .unwrap_or_else(|| panic!("{query} should have failed: {response:#}"))
            .to_owned()
    }

    /// The head of the event log (from `/readyz`).
    pub async fn head(&self) -> u64 {
        let body: Value = self
            .client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .expect("readyz")
            .json()
            .await
            .expect("JSON");
        body["head_position"].as_u64().expect("head position")
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }
}

pub struct Platform {
    pub server: Server,
    pub smtp: Smtp,
    pub api: Api,
    pub database_url: String,
    pub dir: PathBuf,
    extra: Vec<String>,
}

pub async fn platform(backend: Backend, extra: &[&str]) -> Platform {
    platform_with(backend, Smtp::start(), extra).await
}

/// A platform whose server sends mail to `smtp`.
pub async fn platform_with(backend: Backend, smtp: Smtp, extra: &[&str]) -> Platform {
    let dir = temp_dir();
    let database_url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("tenantry.db").display()),
        Backend::Postgres => infra::testing::fresh_pg_url().await,
    };
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    let server = Server::start_configured(server_command(&dir, &database_url, &smtp, &extra));
    let api = Api {
        base: server.base.clone(),
        client: reqwest::Client::new(),
    };
    Platform {
        server,
        smtp,
        api,
        database_url,
        dir,
        extra,
    }
}

fn server_command(
    dir: &std::path::Path,
    database_url: &str,
    smtp: &Smtp,
    extra: &[String],
) -> Command {
    let mut cmd = tenantry(dir);
    cmd.env("TENANTRY_MASTER_KEY", MASTER_KEY)
        .env("TENANTRY_SMTP", smtp.url())
        .args(["--database-url", database_url])
        .arg("serve")
        .args(["--operators", OPERATOR])
        .args(["--ws-init-timeout-ms", "500"])
        .args(extra);
    if let Some(ca) = &smtp.ca {
        cmd.arg("--smtp-ca-file").arg(ca);
    }
    if !extra.iter().any(|a| a == "--auth-attempts-per-minute") {
        cmd.args(["--auth-attempts-per-minute", "1000"]);
    }
    cmd
}

impl Platform {
    /// The command that starts this platform's server (another process on the same
    /// database and mail server).
    pub fn server_command(&self) -> Command {
        server_command(&self.dir, &self.database_url, &self.smtp, &self.extra)
    }

    /// Stops the server and starts it again on the same database; the first server's log.
    pub fn restart(&mut self) -> Vec<String> {
        let next = Server::start_configured(self.server_command());
        let previous = std::mem::replace(&mut self.server, next);
        self.api = Api {
            base: self.server.base.clone(),
            client: reqwest::Client::new(),
        };
        previous.terminate().1
    }

    /// Waits until the mail outbox has dealt with every mail queued so far (and recorded
    /// how): it handles mails in log order, so once a marker mail queued now has arrived,
    /// every earlier one was sent or given up on.
    pub async fn mail_settled(&self) {
        let marker = format!("settled-{}@example.com", uuid::Uuid::now_v7().simple());
        self.api
            .ok(
                None,
                "mutation($e: String!, $p: String!) { signUp(input: {email: $e, password: $p}) { accepted } }",
                json!({"e": marker, "p": PASSWORD}),
            )
            .await;
        self.smtp.message(&marker, "Verify").await;
        // The outbox records each delivery right after the mail server took the message:
        // settled when the log stands still.
        let mut head = self.api.head().await;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.api.head().await;
            if now == head {
                break;
            }
            head = now;
        }
    }
}

/// Logs in through `api`; the session token.
pub async fn log_in_via(api: &Api, email: &str, password: &str) -> String {
    let data = api
        .ok(
            None,
            "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }",
            json!({"e": email, "p": password}),
        )
        .await;
    data["logIn"]["token"].as_str().expect("token").to_owned()
}

pub struct Person {
    pub email: String,
    pub user_id: String,
    pub token: String,
}

impl Platform {
    /// Signs up, verifies the address from the e-mail, logs in.
    pub async fn person(&self, email: &str) -> Person {
        self.person_via(&self.api, email).await
    }

    /// [`Self::person`] through `api` (from the client address it has).
    pub async fn person_via(&self, api: &Api, email: &str) -> Person {
        let data = api
            .ok(
                None,
                "mutation($e: String!, $p: String!) { signUp(input: {email: $e, password: $p}) { accepted position } }",
                json!({"e": email, "p": PASSWORD}),
            )
            .await;
        assert_eq!(data["signUp"]["accepted"], true);
        let token = self.smtp.token(email, "Verify").await;
        api.ok(
            None,
            "mutation($t: String!, $p: String!) { verifyEmail(token: $t, password: $p) { position } }",
            json!({"t": token, "p": PASSWORD}),
        )
        .await;
        // A verification token works once, and a used one reveals nothing.
        let again = api
            .gql(
                None,
                "mutation($t: String!, $p: String!) { verifyEmail(token: $t, password: $p) { position } }",
                json!({"t": token, "p": PASSWORD}),
            )
            .await;
        assert_eq!(code(&again), Some("BAD_USER_INPUT"), "{again}");
        let token = log_in_via(api, email, PASSWORD).await;
        let me = api.ok(Some(&token), "{ me { id } }", json!({})).await;
        Person {
            email: email.to_owned(),
            user_id: me["me"]["id"].as_str().expect("id").to_owned(),
            token,
        }
    }

    pub async fn log_in(&self, email: &str, password: &str) -> String {
        log_in_via(&self.api, email, password).await
    }

    /// Creates a tenant; returns its id.
    pub async fn tenant(&self, owner: &Person, slug: &str) -> String {
        let data = self
            .api
            .ok(
                Some(&owner.token),
                "mutation($n: String!, $s: String!) { createTenant(input: {name: $n, slug: $s}) { tenant { id myRole } position } }",
                json!({"n": format!("Tenant {slug}"), "s": slug}),
            )
            .await;
        assert_eq!(data["createTenant"]["tenant"]["myRole"], "OWNER");
        data["createTenant"]["tenant"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// Invites `who` with `role`, and has them accept; returns nothing.
    pub async fn join(&self, inviter: &Person, tenant: &str, who: &Person, role: &str) {
        self.api
            .ok(
                Some(&inviter.token),
                "mutation($t: ID!, $e: String!, $r: Role!) { inviteMember(tenantId: $t, email: $e, role: $r) { invite { id role } } }",
                json!({"t": tenant, "e": who.email, "r": role}),
            )
            .await;
        let token = self.smtp.token(&who.email, "invited").await;
        self.api
            .ok(
                Some(&who.token),
                "mutation($t: String!) { acceptInvite(token: $t) { tenant { id myRole } } }",
                json!({"t": token}),
            )
            .await;
    }

    /// Creates an API key; returns (id, secret).
    pub async fn api_key(&self, owner: &Person, tenant: &str, scope: &str) -> (String, String) {
        let data = self
            .api
            .ok(
                Some(&owner.token),
                "mutation($t: ID!, $s: ApiKeyScope!) { createApiKey(tenantId: $t, name: \"key\", scope: $s) { apiKey { id } secret } }",
                json!({"t": tenant, "s": scope}),
            )
            .await;
        (
            data["createApiKey"]["apiKey"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
            data["createApiKey"]["secret"]
                .as_str()
                .expect("secret")
                .to_owned(),
        )
    }
}

/// Runs an async test body on both backends.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::graphql::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::graphql::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Every event in the log: (type, payload, metadata) as JSON text.
pub async fn events(database_url: &str) -> Vec<(String, String, String)> {
    let db = infra::database::Database::connect(
        database_url,
        &infra::database::DatabaseOptions::default(),
    )
    .await
    .expect("connect");
    let store = db.event_store().await.expect("event store");
    store
        .read_all(domain::event::Position::START, 100_000)
        .await
        .expect("read the log")
        .into_iter()
        .map(|e| {
            (
                e.event_type.clone(),
                e.payload.to_string(),
                serde_json::to_string(&e.metadata).expect("metadata"),
            )
        })
        .collect()
}

/// The events written after `head`.
pub async fn written_since(database_url: &str, head: u64) -> Vec<domain::event::RecordedEvent> {
    let db =
        infra::database::Database::open(database_url, &infra::database::DatabaseOptions::default())
            .await
            .expect("the database");
    db.event_store()
        .await
        .expect("the store")
        .read_all(domain::event::Position(head), 10_000)
        .await
        .expect("the events")
}

/// Whether `event` is the audit trail's record of a refused request (refusals that matter
/// to security are recorded; nothing else a refused request does is).
pub fn is_refusal_record(event: &domain::event::RecordedEvent) -> bool {
    use domain::aggregate::Aggregate;
    use domain::audit::{AuditLedger, LedgerEvent};
    event.stream.category() == AuditLedger::CATEGORY
        && matches!(
            domain::aggregate::decode_event::<AuditLedger>(
                &event.event_type,
                event.schema_version,
                event.payload.clone()
            ),
            Ok(LedgerEvent::RequestRefused { .. })
        )
}

/// What was written after `head` is only records of refused requests.
pub async fn assert_only_refusals_recorded(database_url: &str, head: u64) {
    let other: Vec<String> = written_since(database_url, head)
        .await
        .iter()
        .filter(|e| !is_refusal_record(e))
        .map(|e| format!("{} {}", e.stream.as_str(), e.event_type))
        .collect();
    assert!(other.is_empty(), "refused requests wrote {other:?}");
}
