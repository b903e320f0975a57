//! GraphQL subscriptions over WebSocket at `/graphql/ws`, speaking `graphql-transport-ws`
//! (the protocol of the `graphql-ws` library), with its close codes:
//!
//! | code | when |
//! |------|------|
//! | 4400 | a message that is not valid JSON or not a protocol message |
//! | 4401 | `subscribe` before the connection was acknowledged |
//! | 4403 | no token, or a token that is invalid, expired or revoked (checked at `connection_init`, on every `subscribe` and before every pushed event): every subscription needs a caller, so an anonymous socket is closed |
//! | 4406 | the client did not ask for the `graphql-transport-ws` subprotocol |
//! | 4408 | no `connection_init` within the timeout |
//! | 4409 | `subscribe` with the id of a subscription that is still running |
//! | 4429 | a second `connection_init` |
//! | 1013 | the caller already has [`SOCKETS_PER_CALLER`] sockets open |
//!
//! A client address may hold [`SOCKETS_PER_CLIENT`] sockets (more are refused with HTTP 429
//! before the upgrade), and a user or API key [`SOCKETS_PER_CALLER`].
//!
//! The token travels in the `connection_init` payload as `authToken` (or `Authorization`).
//! The server pings every `--ws-keepalive-seconds` and closes (1001) a connection silent for
//! three intervals.

use crate::AppState;
use crate::auth::{Principal, authenticate};
use crate::http::RequestId;
use crate::services::RequestMeta;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse as _;
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const PROTOCOL: &str = "graphql-transport-ws";
/// Sockets one client address may hold open.
pub const SOCKETS_PER_CLIENT: usize = 16;
/// Sockets one user or API key may hold open.
pub const SOCKETS_PER_CALLER: usize = 8;

/// Open sockets per client address and per caller.
#[derive(Debug, Default)]
pub struct SocketCounts {
    counts: std::sync::Mutex<HashMap<String, usize>>,
}

/// One open socket counted under a key; uncounted when dropped.
#[derive(Debug)]
pub struct SocketSlot {
    counts: Arc<SocketCounts>,
    key: String,
}

impl SocketCounts {
    /// A slot under `key`, unless `max` are taken.
    pub fn take(self: &Arc<Self>, key: String, max: usize) -> Option<SocketSlot> {
        let mut counts = self.counts.lock().ok()?;
        let count = counts.entry(key.clone()).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            counts: self.clone(),
            key,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.counts.lock()
            && let Some(count) = counts.get_mut(&self.key)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let limit = state.services.config.max_body_bytes;
    let ws = ws
        .protocols([PROTOCOL])
        .max_message_size(limit)
        .max_frame_size(limit);
    let agreed = ws.selected_protocol().is_some();
    let meta = RequestMeta {
        ip: Some(
            state
                .services
                .config
                .trusted_proxies
                .client(peer.ip(), &headers),
        ),
        request_id,
        operation: String::new(),
        fingerprint: None,
    };
    let client = meta.ip.map_or_else(String::new, |ip| {
        crate::graphql::identity::client_key_of(ip)
    });
    let Some(client_slot) = state
        .sockets
        .take(format!("client {client}"), SOCKETS_PER_CLIENT)
    else {
        return (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            [(axum::http::header::RETRY_AFTER, "10")],
            "too many WebSocket connections from this address\n",
        )
            .into_response();
    };
    ws.on_upgrade(move |mut socket| async move {
        if agreed {
            Connection::new(state, meta, client_slot).run(socket).await;
        } else {
            close(&mut socket, 4406, "Subprotocol not acceptable").await;
        }
    })
}

/// The close code for a token that stopped working (4403), or for a failure to check it (1011).
fn refusal(error: &crate::error::ApiError) -> (u16, String) {
    match error {
        crate::error::ApiError::Unauthenticated(_) => (4403, "Forbidden".into()),
        _ => (1011, "Internal error".into()),
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// Most subscriptions one connection may run at once.
const MAX_SUBSCRIPTIONS: usize = 20;

/// What subscription tasks send back to the connection.
enum Outgoing {
    /// A message of the subscription with this id and generation (dropped if that
    /// subscription is no longer the live one under its id).
    Message(String, u64, Value),
    /// The subscription with this id and generation is over.
    Finished(String, u64),
    /// The caller's session or key stopped working: close the connection.
    Close(u16, &'static str),
}

struct Connection {
    state: AppState,
    meta: RequestMeta,
    principal: Option<Principal>,
    /// The token from `connection_init`, checked again on every subscribe and every event,
    /// so logging out, a password change or a revoked key ends the connection's access.
    token: Option<String>,
    init_received: bool,
    subscriptions: HashMap<String, (u64, JoinHandle<()>)>,
    generation: u64,
    /// This socket counted under its client address, and (once initialised) its caller.
    _client_slot: SocketSlot,
    caller_slot: Option<SocketSlot>,
}

impl Connection {
    fn new(state: AppState, meta: RequestMeta, client_slot: SocketSlot) -> Self {
        Self {
            state,
            meta,
            principal: None,
            token: None,
            init_received: false,
            subscriptions: HashMap::new(),
            generation: 0,
            _client_slot: client_slot,
            caller_slot: None,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let (tx, mut rx) = mpsc::channel::<Outgoing>(64);
        let deadline = tokio::time::sleep(self.state.services.config.ws_init_timeout);
        tokio::pin!(deadline);
        // Keepalive: a ping every interval; a peer silent for three intervals is gone, and
        // its subscriptions with it.
        let every = self.state.services.config.ws_keepalive;
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut last_heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = &mut deadline, if self.principal.is_none() => {
                    close(&mut socket, 4408, "Connection initialisation timeout").await;
                    break;
                }
                _ = keepalive.tick() => {
                    if last_heard.elapsed() > every * 3 {
                        close(&mut socket, 1001, "No answer to pings").await;
                        break;
                    }
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        break;
                    }
                }
                out = rx.recv() => {
                    match out {
                                                Some(Outgoing::Message(id, generation, message)) => {
                            let live = self.subscriptions.get(&id).is_some_and(|(g, _)| *g == generation);
                            if live && socket.send(Message::Text(message.to_string().into())).await.is_err() {
                                break;
                            }
                        }
                                                Some(Outgoing::Finished(id, generation)) => {
                            if self.subscriptions.get(&id).is_some_and(|(g, _)| *g == generation) {
                                self.subscriptions.remove(&id);
                            }
                        }
                        Some(Outgoing::Close(code, reason)) => {
                            close(&mut socket, code, reason).await;
                            break;
                        }
                        None => break,
                    }
                }
                                incoming = socket.recv() => {
                    if matches!(incoming, Some(Ok(_))) {
                        last_heard = tokio::time::Instant::now();
                    }
                    let text = match incoming {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Binary(_))) => {
                            close(&mut socket, 4400, "Binary messages are not part of the protocol").await;
                            break;
                        }
                        Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    };
                    match self.handle(text.as_str(), &tx).await {
                        Ok(Some(reply)) => {
                            if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err((code, reason)) => {
                            close(&mut socket, code, &reason).await;
                            break;
                        }
                    }
                }
            }
        }
        for (_, (_, task)) in self.subscriptions.drain() {
            task.abort();
        }
    }

    /// Handles one client message: a reply to send, or a close code and reason.
    async fn handle(
        &mut self,
        text: &str,
        tx: &mpsc::Sender<Outgoing>,
    ) -> Result<Option<Value>, (u16, String)> {
        let invalid = || (4400, "Invalid message received".to_owned());
        let message: Value = serde_json::from_str(text).map_err(|_| invalid())?;
        let kind = message
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?;
        match kind {
            "connection_init" => {
                if self.init_received {
                    return Err((4429, "Too many initialisation requests".into()));
                }
                self.init_received = true;
                let payload = message.get("payload").cloned().unwrap_or(Value::Null);
                let token = payload
                    .get("authToken")
                    .or_else(|| payload.get("Authorization"))
                    .or_else(|| payload.get("authorization"))
                    .and_then(Value::as_str)
                    .map(|t| t.strip_prefix("Bearer ").unwrap_or(t).to_owned());
                match authenticate(&self.state.services, token.as_deref()).await {
                    Ok(Principal::Anonymous) => {
                        Err((4403, "Forbidden: connection_init needs authToken".into()))
                    }
                    Ok(principal) => {
                        let caller = format!("caller {}", principal.caller_id());
                        let Some(slot) = self.state.sockets.take(caller, SOCKETS_PER_CALLER) else {
                            return Err((1013, "Too many connections for this caller".into()));
                        };
                        self.caller_slot = Some(slot);
                        self.principal = Some(principal);
                        self.token = token;
                        Ok(Some(json!({"type": "connection_ack"})))
                    }
                    Err(error) => Err(refusal(&error)),
                }
            }
            "ping" => Ok(Some(json!({"type": "pong"}))),
            "pong" => Ok(None),
            "subscribe" => {
                if self.principal.is_none() {
                    return Err((4401, "Unauthorized".into()));
                }
                let principal = authenticate(&self.state.services, self.token.as_deref())
                    .await
                    .map_err(|error| refusal(&error))?;
                let id = message
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(invalid)?
                    .to_owned();
                if self
                    .subscriptions
                    .get(&id)
                    .is_some_and(|(_, task)| !task.is_finished())
                {
                    // A close reason must fit a control frame (123 bytes): bound the echoed id.
                    let shown: String = id.chars().take(64).collect();
                    return Err((4409, format!("Subscriber for {shown} already exists")));
                }
                self.subscriptions
                    .retain(|_, (_, task)| !task.is_finished());
                if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                    let error = crate::http::server_error(crate::error::ApiError::RateLimited {
                        retry_after_secs: 1,
                    });
                    return Ok(Some(json!({"type": "error", "id": id, "payload": [error]})));
                }
                let payload = message.get("payload").cloned().ok_or_else(invalid)?;
                let request: async_graphql::Request =
                    serde_json::from_value(payload).map_err(|_| invalid())?;
                self.generation += 1;
                let task = self.start(id.clone(), self.generation, request, principal, tx.clone());
                self.subscriptions.insert(id, (self.generation, task));
                Ok(None)
            }
            "complete" => {
                let id = message
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(invalid)?;
                if let Some((_, task)) = self.subscriptions.remove(id) {
                    task.abort();
                }
                Ok(None)
            }
            _ => Err(invalid()),
        }
    }

    fn start(
        &self,
        id: String,
        generation: u64,
        request: async_graphql::Request,
        principal: Principal,
        tx: mpsc::Sender<Outgoing>,
    ) -> JoinHandle<()> {
        let services = self.state.services.clone();
        let schema = self.state.schema.clone();
        let meta = self.meta.clone();
        let token = self.token.clone();
        let documents = self.state.documents.clone();
        let mut request = request;
        tokio::spawn(async move {
            if let Some(error) = documents.prepare(&mut request, &services.config) {
                let _ = tx
                    .send(Outgoing::Message(
                        id.clone(),
                        generation,
                        json!({"type": "error", "id": id, "payload": [error]}),
                    ))
                    .await;
                let _ = tx.send(Outgoing::Finished(id, generation)).await;
                return;
            }
            let request = crate::areas::with_loaders(request, &services)
                .data(principal)
                .data(meta);
            let mut stream = schema.execute_stream(request);
            while let Some(response) = stream.next().await {
                if let Err(error) = authenticate(&services, token.as_deref()).await {
                    let (code, _) = refusal(&error);
                    let reason = if code == 4403 {
                        "Forbidden"
                    } else {
                        "Internal error"
                    };
                    let _ = tx.send(Outgoing::Close(code, reason)).await;
                    return;
                }
                let response = crate::http::with_codes(response);
                // A failure with no data (refused at the start, or the caller lost access
                // later) is the protocol's `error` message, which ends the operation.
                if response.data == async_graphql::Value::Null && !response.errors.is_empty() {
                    let _ = tx
                        .send(Outgoing::Message(
                            id.clone(),
                            generation,
                            json!({"type": "error", "id": id, "payload": response.errors}),
                        ))
                        .await;
                    let _ = tx.send(Outgoing::Finished(id, generation)).await;
                    return;
                }
                let message = json!({"type": "next", "id": id, "payload": response});
                if tx
                    .send(Outgoing::Message(id.clone(), generation, message))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = tx
                .send(Outgoing::Message(
                    id.clone(),
                    generation,
                    json!({"type": "complete", "id": id}),
                ))
                .await;
            let _ = tx.send(Outgoing::Finished(id, generation)).await;
        })
    }
}
