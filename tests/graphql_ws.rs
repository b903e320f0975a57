//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`): the protocol's close codes,
//! and live updates pushed by the projection runner, for the caller's tenant only.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use support::graphql::{Backend, Platform, platform};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(p: &Platform, protocol: bool) -> Ws {
    let url = format!("{}/graphql/ws", p.api.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    if protocol {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next protocol message, or the close code.
async fn next(ws: &mut Ws) -> Result<Value, u16> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Ok(serde_json::from_str(text.as_str()).unwrap());
            }
            Some(Ok(Message::Close(Some(frame)))) => return Err(u16::from(frame.code)),
            Some(Ok(Message::Close(None))) | None => return Err(1005),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("websocket error: {e}"),
        }
    }
}

async fn closed_with(ws: &mut Ws) -> u16 {
    loop {
        if let Err(code) = next(ws).await {
            return code;
        }
    }
}

async fn acked(p: &Platform, token: &str) -> Ws {
    let mut ws = connect(p, true).await;
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"authToken": token}}),
    )
    .await;
    assert_eq!(next(&mut ws).await.unwrap()["type"], "connection_ack");
    ws
}

fn subscribe(id: &str, query: &str, tenant: &str) -> Value {
    json!({"type": "subscribe", "id": id, "payload": {"query": query, "variables": {"t": tenant}}})
}

const MEMBERS_CHANGED: &str =
    "subscription($t: ID!) { membersChanged(tenantId: $t) { email role } }";
const TENANT_UPDATED: &str = "subscription($t: ID!) { tenantUpdated(tenantId: $t) { name } }";

async fn the_protocol_closes_with_the_right_codes(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;

    let mut ws = connect(&p, false).await;
    assert_eq!(
        closed_with(&mut ws).await,
        4406,
        "no graphql-transport-ws subprotocol"
    );

    let mut ws = connect(&p, true).await;
    assert_eq!(
        closed_with(&mut ws).await,
        4408,
        "no connection_init within the timeout"
    );

    let mut ws = connect(&p, true).await;
    send(&mut ws, subscribe("1", TENANT_UPDATED, &tenant)).await;
    assert_eq!(closed_with(&mut ws).await, 4401, "subscribe before the ack");

    let mut ws = connect(&p, true).await;
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"authToken": "ses1.forged.token"}}),
    )
    .await;
    assert_eq!(closed_with(&mut ws).await, 4403, "a bad token");

    let mut ws = acked(&p, &ada.token).await;
    send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(closed_with(&mut ws).await, 4429, "a second connection_init");

    let mut ws = acked(&p, &ada.token).await;
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut ws).await.unwrap()["type"], "pong");
    send(&mut ws, subscribe("1", TENANT_UPDATED, &tenant)).await;
    send(&mut ws, subscribe("1", TENANT_UPDATED, &tenant)).await;
    assert_eq!(
        closed_with(&mut ws).await,
        4409,
        "a duplicate subscription id"
    );

    // Logging out over HTTP ends the socket's access too: its next subscribe is refused.
    let second = p
        .log_in("ada@example.com", support::graphql::PASSWORD)
        .await;
    let mut ws = acked(&p, &second).await;
    p.api
        .ok(Some(&second), "mutation { logOut { position } }", json!({}))
        .await;
    send(&mut ws, subscribe("1", TENANT_UPDATED, &tenant)).await;
    assert_eq!(
        closed_with(&mut ws).await,
        4403,
        "a subscribe after logging out"
    );

    // A running subscription stops at the next event once its session has ended.
    let third = p
        .log_in("ada@example.com", support::graphql::PASSWORD)
        .await;
    let mut ws = acked(&p, &third).await;
    send(&mut ws, subscribe("live", TENANT_UPDATED, &tenant)).await;
    let rename =
        "mutation($t: ID!, $n: String!) { renameTenant(tenantId: $t, name: $n) { position } }";
    p.api
        .ok(
            Some(&ada.token),
            rename,
            json!({"t": tenant, "n": "Renamed once"}),
        )
        .await;
    assert_eq!(
        next(&mut ws).await.unwrap()["type"],
        "next",
        "live while the session is"
    );
    p.api
        .ok(Some(&third), "mutation { logOut { position } }", json!({}))
        .await;
    p.api
        .ok(
            Some(&ada.token),
            rename,
            json!({"t": tenant, "n": "Renamed twice"}),
        )
        .await;
    assert_eq!(
        closed_with(&mut ws).await,
        4403,
        "an event after logging out"
    );

    let mut ws = acked(&p, &ada.token).await;
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(closed_with(&mut ws).await, 4400, "an invalid message");
}

async fn subscriptions_push_changes_for_the_callers_tenant_only(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let bob = p.person("bob@example.com").await;
    let acme = p.tenant(&ada, "acme").await;
    let bobs = p.tenant(&bob, "bobs").await;

    let mut ws = acked(&p, &ada.token).await;
    send(&mut ws, subscribe("renames", TENANT_UPDATED, &acme)).await;
    send(&mut ws, subscribe("members", MEMBERS_CHANGED, &acme)).await;
    // Another tenant's id: refused like any query, nothing leaks.
    send(&mut ws, subscribe("theirs", TENANT_UPDATED, &bobs)).await;
    let refused = next(&mut ws).await.unwrap();
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "theirs");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"], "NOT_FOUND",
        "{refused}"
    );

    // Bob's tenant changing pushes nothing to ada; her own tenant changing does.
    let rename =
        "mutation($t: ID!, $n: String!) { renameTenant(tenantId: $t, name: $n) { position } }";
    p.api
        .ok(
            Some(&bob.token),
            rename,
            json!({"t": bobs, "n": "Bob's Secret Project"}),
        )
        .await;
    p.api
        .ok(
            Some(&ada.token),
            rename,
            json!({"t": acme, "n": "Acme Corp"}),
        )
        .await;
    let pushed = next(&mut ws).await.unwrap();
    assert_eq!(pushed["type"], "next", "{pushed}");
    assert_eq!(pushed["id"], "renames");
    assert_eq!(
        pushed["payload"]["data"]["tenantUpdated"]["name"],
        "Acme Corp"
    );

    // Bob joins acme: the members subscription pushes the new list.
    let mut bobs_ws = acked(&p, &bob.token).await;
    p.join(&ada, &acme, &bob, "MEMBER").await;
    let pushed = loop {
        let message = next(&mut ws).await.unwrap();
        if message["id"] == "members"
            && message["payload"]["data"]["membersChanged"]
                .as_array()
                .unwrap()
                .len()
                == 2
        {
            break message;
        }
    };
    assert_eq!(
        pushed["payload"]["data"]["membersChanged"][1]["email"],
        "bob@example.com"
    );

    // Bob watches acme's members until he is removed: then his subscription ends.
    send(&mut bobs_ws, subscribe("watch", MEMBERS_CHANGED, &acme)).await;
    // A role change shows the subscription is live (the protocol has no subscribe ack).
    let role = "mutation($t: ID!, $u: ID!) { changeMemberRole(tenantId: $t, userId: $u, role: VIEWER) { position } }";
    p.api
        .ok(Some(&ada.token), role, json!({"t": acme, "u": bob.user_id}))
        .await;
    loop {
        let message = next(&mut bobs_ws).await.unwrap();
        assert_eq!(message["type"], "next", "{message}");
        let members = message["payload"]["data"]["membersChanged"]
            .as_array()
            .unwrap()
            .clone();
        if members.iter().any(|m| m["role"] == "VIEWER") {
            break;
        }
    }
    let remove =
        "mutation($t: ID!, $u: ID!) { removeMember(tenantId: $t, userId: $u) { position } }";
    p.api
        .ok(
            Some(&ada.token),
            remove,
            json!({"t": acme, "u": bob.user_id}),
        )
        .await;
    // The protocol's `error` message ends the operation (no `complete` follows it).
    let last = next(&mut bobs_ws).await.unwrap();
    assert_eq!(last["type"], "error", "{last}");
    assert_eq!(last["id"], "watch");
    assert_eq!(
        last["payload"][0]["extensions"]["code"], "NOT_FOUND",
        "{last}"
    );
    send(&mut bobs_ws, json!({"type": "ping"})).await;
    assert_eq!(
        next(&mut bobs_ws).await.unwrap()["type"],
        "pong",
        "nothing else was sent for it"
    );
    send(&mut ws, json!({"type": "ping"})).await;
    loop {
        let message = next(&mut ws).await.unwrap();
        if message["type"] == "pong" {
            break; // ada's connection carries on
        }
    }
}

async fn silent_clients_are_pinged_then_disconnected(backend: Backend) {
    let p = platform(backend, &["--ws-keepalive-seconds", "1"]).await;
    let ada = p.person("ada@example.com").await;
    let mut ws = acked(&p, &ada.token).await;
    // A ping arrives (tungstenite answers it while this test reads).
    let ping = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Ping(_))) = ws.next().await {
                return;
            }
        }
    })
    .await;
    assert!(ping.is_ok(), "no ping within 5 s");
    // A client that stops reading stops answering: after three silent intervals the server
    // gives up on it. (Waiting is the behaviour under test.)
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Reading now answers the queued pings, which may meet the closed socket before its
    // close frame is read: either way the connection must be over.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the server ended the connection");
    assert!(matches!(ended, None | Some(1001)), "{ended:?}");
}

on_both!(
    silent_clients_are_pinged_then_disconnected,
    the_protocol_closes_with_the_right_codes,
    subscriptions_push_changes_for_the_callers_tenant_only,
);
