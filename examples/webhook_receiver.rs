//! A webhook receiver that verifies every delivery's Standard Webhooks
//! signature and counts what it was sent: the benchmark's fast local
//! receiver, and a worked example of verification in Rust.
//!
//! ```sh
//! cargo run --release --example webhook_receiver -- 127.0.0.1:9000 whsec_...
//! curl -s 127.0.0.1:9000/count    # {"received":..,"distinct":..,"bad_signatures":..}
//! ```
//!
//! Every POST answers 204 when its signature verifies and 401 when not.
//! Several webhooks may share it: give each secret after the address.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{KeyInit, Mac};

#[derive(Default)]
struct Counts {
    received: u64,
    bad: u64,
    ids: HashSet<String>,
}

#[derive(Clone)]
struct Receiver {
    keys: Arc<Vec<Vec<u8>>>,
    counts: Arc<Mutex<Counts>>,
}

/// Whether `signatures` (space-separated `v1,<base64>`) holds one made
/// with any of `keys` over `{id}.{timestamp}.{body}`.
fn verifies(keys: &[Vec<u8>], id: &str, timestamp: &str, body: &[u8], signatures: &str) -> bool {
    keys.iter().any(|key| {
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key) else {
            return false;
        };
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        let expected = mac.finalize().into_bytes();
        signatures.split(' ').any(|s| {
            s.strip_prefix("v1,")
                .and_then(|b| BASE64.decode(b).ok())
                .is_some_and(|sig| sig.as_slice() == expected.as_slice())
        })
    })
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let id = header("webhook-id");
    let ok = verifies(
        &r.keys,
        id,
        header("webhook-timestamp"),
        &body,
        header("webhook-signature"),
    );
    let Ok(mut counts) = r.counts.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    counts.received += 1;
    if !ok {
        counts.bad += 1;
        return StatusCode::UNAUTHORIZED;
    }
    counts.ids.insert(id.to_string());
    StatusCode::NO_CONTENT
}

async fn count(State(r): State<Receiver>) -> String {
    let Ok(counts) = r.counts.lock() else {
        return String::new();
    };
    format!(
        "{{\"received\":{},\"distinct\":{},\"bad_signatures\":{}}}\n",
        counts.received,
        counts.ids.len(),
        counts.bad
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let keys = args
        .map(|s| {
            let b64 = s.strip_prefix("whsec_").unwrap_or(&s);
            BASE64
                .decode(b64)
                .map_err(|e| anyhow::anyhow!("{s}: not a whsec_ secret: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let receiver = Receiver {
        keys: Arc::new(keys),
        counts: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/count", get(count))
        .fallback(receive)
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("receiving on http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
