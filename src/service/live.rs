//! Live alerts across instances. Each instance publishes its notices to its
//! own subscribers at once (see `service`); on PostgreSQL this module also
//! relays them to the other instances with NOTIFY, and turns their NOTIFYs
//! into local notices. No extra infrastructure: the database is the bus.
//!
//! Payload: `<instance>;<c|u>;<id>,<id>,...` — ids only, well under
//! PostgreSQL's 8000-byte limit; receivers read the alerts themselves, so a
//! notice always shows committed state.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::{AlertNotice, NoticeKind, Service};
use crate::auth::token::random_secret;
use crate::config::DatabaseUrl;
use crate::db::notify::Listener;

const CHANNEL: &str = "threatwatch_alerts";
/// Ids per NOTIFY: keeps each payload far below PostgreSQL's limit.
const IDS_PER_NOTIFY: usize = 400;
const IDLE_PING: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts the relay and the listener when the database is PostgreSQL.
pub fn start(service: &Service) {
    let DatabaseUrl::Postgres(url) = &service.settings.database_url else {
        return;
    };
    let instance = random_secret(9);
    tokio::spawn(relay(service.clone(), instance.clone()));
    tokio::spawn(listen(service.clone(), url.clone(), instance));
}

fn code(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Created => "c",
        NoticeKind::Updated => "u",
    }
}

async fn relay(service: Service, instance: String) {
    let mut rx = service.alerts.subscribe();
    let mut shutdown = service.shutdown.subscribe();
    loop {
        let first = tokio::select! {
            n = rx.recv() => n,
            _ = shutdown.changed() => return,
        };
        let mut batch = match first {
            Ok(n) if !n.remote => vec![n],
            Ok(_) => continue,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "alert relay fell behind; other instances miss these notices"
                );
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        while batch.len() < IDS_PER_NOTIFY {
            match rx.try_recv() {
                Ok(n) if !n.remote => batch.push(n),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        for kind in [NoticeKind::Created, NoticeKind::Updated] {
            let ids: Vec<String> = batch
                .iter()
                .filter(|n| n.kind == kind)
                .map(|n| n.alert.alert.id.to_string())
                .collect();
            if ids.is_empty() {
                continue;
            }
            let payload = format!("{instance};{};{}", code(kind), ids.join(","));
            if let Err(e) = service.db.notify(CHANNEL, &payload).await {
                tracing::warn!(error = ?e, "cannot relay alert notices to other instances");
            }
        }
    }
}

async fn listen(service: Service, url: String, instance: String) {
    let mut shutdown = service.shutdown.subscribe();
    let mut backoff = Duration::from_millis(250);
    loop {
        let mut listener = tokio::select! {
            l = Listener::connect(&url, CHANNEL) => match l {
                Ok(l) => {
                    backoff = Duration::from_millis(250);
                    l
                }
                Err(e) => {
                    tracing::warn!(error = ?e, retry_in = ?backoff, "alert listener cannot connect");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        loop {
            let next = tokio::select! {
                n = listener.next(IDLE_PING) => n,
                _ = shutdown.changed() => return,
            };
            match next {
                Ok(Some(payload)) => deliver(&service, &instance, &payload).await,
                Ok(None) => {
                    if let Err(e) = listener.ping().await {
                        tracing::warn!(error = ?e, "alert listener lost its connection; reconnecting");
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "alert listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn deliver(service: &Service, instance: &str, payload: &str) {
    let mut parts = payload.splitn(3, ';');
    let (Some(from), Some(kind), Some(ids)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    if from == instance {
        return;
    }
    let kind = match kind {
        "c" => NoticeKind::Created,
        "u" => NoticeKind::Updated,
        _ => return,
    };
    let ids: Vec<i64> = ids.split(',').filter_map(|i| i.parse().ok()).collect();
    match service.db.alerts_by_ids(ids).await {
        Ok(alerts) => {
            for alert in alerts {
                let _ = service.alerts.send(AlertNotice {
                    kind,
                    alert,
                    remote: true,
                });
            }
        }
        Err(e) => tracing::warn!(error = ?e, "cannot read relayed alerts"),
    }
}
