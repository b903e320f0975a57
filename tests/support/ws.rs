//! A `graphql-transport-ws` client for end-to-end tests.

use super::graphql::Platform;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/graphql/ws`, asking for the `graphql-transport-ws` subprotocol if `protocol`.
pub async fn connect(p: &Platform, protocol: bool) -> Ws {
    let url = format!("{}/graphql/ws", p.api.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().expect("a WebSocket request");
    if protocol {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().expect("a header value"),
        );
    }
    tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket handshake")
        .0
}

pub async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
}

/// The next protocol message, or the close code (1005 when none was given, 1006 when the
/// connection ended without a close frame).
pub async fn next(ws: &mut Ws) -> Result<Value, u16> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Ok(serde_json::from_str(text.as_str()).expect("a JSON message"));
            }
            Some(Ok(Message::Close(Some(frame)))) => return Err(u16::from(frame.code)),
            Some(Ok(Message::Close(None))) => return Err(1005),
            None | Some(Err(_)) => return Err(1006),
            Some(Ok(_)) => {}
        }
    }
}

/// Reads until the connection closes; its close code.
pub async fn closed_with(ws: &mut Ws) -> u16 {
    loop {
        if let Err(code) = next(ws).await {
            return code;
        }
    }
}

/// A connection initialised with `token` and acknowledged.
pub async fn acked(p: &Platform, token: &str) -> Ws {
    let mut ws = connect(p, true).await;
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"authToken": token}}),
    )
    .await;
    assert_eq!(
        next(&mut ws).await.expect("connection_ack")["type"],
        "connection_ack"
    );
    ws
}

/// A `subscribe` message for `query` with `$t` bound to `tenant`.
pub fn subscribe(id: &str, query: &str, tenant: &str) -> Value {
    json!({"type": "subscribe", "id": id, "payload": {"query": query, "variables": {"t": tenant}}})
}

/// Sends a ping and reads up to its pong; the messages that arrived before it. Since the
/// server handles a connection's messages in order, a pong proves every earlier message of
/// this client was handled.
pub async fn round_trip(ws: &mut Ws) -> Vec<Value> {
    send(ws, json!({"type": "ping"})).await;
    let mut before = Vec::new();
    loop {
        let message = next(ws).await.expect("a pong");
        if message["type"] == "pong" {
            return before;
        }
        before.push(message);
    }
}

pub const MEMBERS_CHANGED: &str =
    "subscription($t: ID!) { membersChanged(tenantId: $t) { email role } }";
pub const TENANT_UPDATED: &str = "subscription($t: ID!) { tenantUpdated(tenantId: $t) { name } }";
