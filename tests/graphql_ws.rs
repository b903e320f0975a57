//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`): the protocol's close codes,
//! and live updates pushed by the projection runner, for the caller's tenant only.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use support::graphql::{Backend, PASSWORD, platform};
use support::ws::{
    MEMBERS_CHANGED, TENANT_UPDATED, acked, closed_with, connect, next, round_trip, send, subscribe,
};
use tokio_tungstenite::tungstenite::Message;

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
    let second = p.log_in("ada@example.com", PASSWORD).await;
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
    let third = p.log_in("ada@example.com", PASSWORD).await;
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

const RENAME: &str =
    "mutation($t: ID!, $n: String!) { renameTenant(tenantId: $t, name: $n) { position } }";

async fn a_socket_holds_20_subscriptions_and_64_kib_text_messages(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;

    let mut ws = acked(&p, &ada.token).await;
    for i in 0..20 {
        send(
            &mut ws,
            subscribe(&format!("s{i}"), TENANT_UPDATED, &tenant),
        )
        .await;
    }
    assert_eq!(
        round_trip(&mut ws).await,
        Vec::<Value>::new(),
        "20 are accepted"
    );
    send(&mut ws, subscribe("s20", TENANT_UPDATED, &tenant)).await;
    let refused = next(&mut ws).await.unwrap();
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "s20");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"], "RATE_LIMITED",
        "the 21st: {refused}"
    );
    // Completing one makes room for another.
    send(&mut ws, json!({"type": "complete", "id": "s0"})).await;
    send(&mut ws, subscribe("s20", TENANT_UPDATED, &tenant)).await;
    assert_eq!(round_trip(&mut ws).await, Vec::<Value>::new(), "room again");
    p.api
        .ok(
            Some(&ada.token),
            RENAME,
            json!({"t": tenant, "n": "Acme Corp"}),
        )
        .await;
    let mut pushed = std::collections::BTreeSet::new();
    while pushed.len() < 20 {
        let message = next(&mut ws).await.unwrap();
        assert_eq!(message["type"], "next", "{message}");
        pushed.insert(message["id"].as_str().unwrap().to_owned());
    }
    assert!(
        !pushed.contains("s0") && pushed.contains("s20"),
        "{pushed:?}"
    );

    // Messages up to 64 KiB are read; a larger one ends the connection.
    let padded = |bytes: usize| {
        let frame = json!({"type": "ping", "payload": {"pad": ""}}).to_string();
        json!({"type": "ping", "payload": {"pad": "x".repeat(bytes - frame.len())}}).to_string()
    };
    let fits = padded(64 * 1024);
    assert_eq!(fits.len(), 64 * 1024);
    ws.send(Message::Text(fits.into())).await.unwrap();
    assert_eq!(
        next(&mut ws).await.unwrap()["type"],
        "pong",
        "64 KiB is read"
    );
    ws.send(Message::Text(padded(64 * 1024 + 1).into()))
        .await
        .unwrap();
    let code = closed_with(&mut ws).await;
    assert!(
        matches!(code, 1009 | 1006),
        "a message over 64 KiB ends the connection: {code}"
    );

    let mut ws = acked(&p, &ada.token).await;
    ws.send(Message::Binary(b"{\"type\": \"ping\"}".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(closed_with(&mut ws).await, 4400, "a binary message");
}

/// Reads pushes until one carries `name` (earlier ones may still be in flight).
async fn until_named(ws: &mut support::ws::Ws, id: &str, name: &str) {
    loop {
        let message = next(ws).await.unwrap();
        assert_eq!(message["type"], "next", "{message}");
        if message["id"] == id && message["payload"]["data"]["tenantUpdated"]["name"] == name {
            return;
        }
    }
}

async fn revoking_a_key_or_changing_the_password_closes_its_sockets(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    let revoke =
        "mutation($t: ID!, $k: ID!) { revokeApiKey(tenantId: $t, apiKeyId: $k) { position } }";

    // A key's running subscription: live until the key is revoked, then 4403.
    let (key_id, key) = p.api_key(&ada, &tenant, "READ_ONLY").await;
    let mut ws = acked(&p, &key).await;
    send(&mut ws, subscribe("live", TENANT_UPDATED, &tenant)).await;
    api.ok(Some(&ada.token), RENAME, json!({"t": tenant, "n": "One"}))
        .await;
    until_named(&mut ws, "live", "One").await;
    api.ok(Some(&ada.token), revoke, json!({"t": tenant, "k": key_id}))
        .await;
    api.ok(Some(&ada.token), RENAME, json!({"t": tenant, "n": "Two"}))
        .await;
    assert_eq!(
        closed_with(&mut ws).await,
        4403,
        "an event after the key was revoked"
    );

    // A key revoked while its socket is idle: the next subscribe is refused.
    let (other_id, other) = p.api_key(&ada, &tenant, "READ_ONLY").await;
    let mut ws = acked(&p, &other).await;
    api.ok(
        Some(&ada.token),
        revoke,
        json!({"t": tenant, "k": other_id}),
    )
    .await;
    send(&mut ws, subscribe("late", TENANT_UPDATED, &tenant)).await;
    assert_eq!(
        closed_with(&mut ws).await,
        4403,
        "a subscribe after the key was revoked"
    );

    // A password change ends the other sessions' sockets; the changing session's lives on.
    let second = p.log_in(&ada.email, PASSWORD).await;
    let mut others = acked(&p, &second).await;
    let mut own = acked(&p, &ada.token).await;
    send(&mut others, subscribe("live", TENANT_UPDATED, &tenant)).await;
    send(&mut own, subscribe("live", TENANT_UPDATED, &tenant)).await;
    api.ok(Some(&ada.token), RENAME, json!({"t": tenant, "n": "Three"}))
        .await;
    until_named(&mut others, "live", "Three").await;
    until_named(&mut own, "live", "Three").await;
    api.ok(
        Some(&ada.token),
        "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { position } }",
        json!({"c": PASSWORD, "n": "another good passphrase"}),
    )
    .await;
    api.ok(Some(&ada.token), RENAME, json!({"t": tenant, "n": "Four"}))
        .await;
    assert_eq!(
        closed_with(&mut others).await,
        4403,
        "an event after another session changed the password"
    );
    until_named(&mut own, "live", "Four").await;
}

/// Sockets cost the server memory until they close: an anonymous one is closed at
/// `connection_init`, a caller holds at most 8 and a client address at most 16.
async fn sockets_are_capped_per_caller_and_per_client(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;

    let mut anonymous = connect(&p, true).await;
    send(&mut anonymous, json!({"type": "connection_init"})).await;
    assert_eq!(closed_with(&mut anonymous).await, 4403, "no token");
    drop(anonymous);

    let mut open = Vec::new();
    for _ in 0..8 {
        open.push(acked(&p, &ada.token).await);
    }
    let mut ninth = connect(&p, true).await;
    send(
        &mut ninth,
        json!({"type": "connection_init", "payload": {"authToken": ada.token}}),
    )
    .await;
    assert_eq!(
        closed_with(&mut ninth).await,
        1013,
        "a ninth socket for one caller"
    );
    drop(ninth);

    // The client address: 16 sockets at most, whoever uses them (8 are open already).
    for _ in 0..8 {
        open.push(connect(&p, true).await);
    }
    let url = format!("{}/graphql/ws", p.api.base.replace("http://", "ws://"));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
        }
        other => panic!(
            "a seventeenth socket from one address: {:?}",
            other.map(|_| ())
        ),
    }
}

on_both!(
    sockets_are_capped_per_caller_and_per_client,
    silent_clients_are_pinged_then_disconnected,
    the_protocol_closes_with_the_right_codes,
    subscriptions_push_changes_for_the_callers_tenant_only,
    a_socket_holds_20_subscriptions_and_64_kib_text_messages,
    revoking_a_key_or_changing_the_password_closes_its_sockets,
);
