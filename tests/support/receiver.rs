//! A real HTTP server on loopback that receives webhooks: it records every request (headers
//! and body) and answers with the statuses it is told to, in order (then 200).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    answers: VecDeque<u16>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!(
            "http://{}/hooks",
            listener.local_addr().expect("its address")
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, inner }
    }

    /// The next requests are answered with these statuses, in order.
    pub fn answer_with(&self, statuses: &[u16]) {
        self.inner
            .lock()
            .expect("not poisoned")
            .answers
            .extend(statuses);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("not poisoned").received.clone()
    }
}

async fn answer(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut inner = inner.lock().expect("not poisoned");
    inner.received.push(Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let status = inner.answers.pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}
