//! Webhooks: which alert changes reach which endpoint, what is sent, and
//! when a failed delivery is tried again. Plain rules; storage keeps the
//! outbox and `notify` makes the calls.

use std::time::Duration;

use chrono::{NaiveDateTime, SecondsFormat, TimeDelta};
use serde_json::json;

use super::alert::AlertWithEvent;
use super::event::{label, MAX_LABEL_CHARS};
use super::{AlertStatus, DeliveryStatus, Severity, WebhookFormat, WebhookTrigger};
use crate::error::{Error, Result};

/// Longest URL accepted: far beyond any chat or paging service's, short
/// enough that a stored URL cannot be a payload of its own.
pub const MAX_URL_CHARS: usize = 2_000;
/// Most sources one webhook may be limited to.
pub const MAX_SOURCES: usize = 100;

/// Waits before each retry of a failed attempt: the first retry comes
/// quickly (a receiver restarting), the later ones spread a long outage
/// over a day. After the last one the delivery is FAILED.
pub const RETRY_DELAYS: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The most a receiver's `Retry-After` may hold a delivery back: beyond it
/// a receiver could park deliveries forever.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// An endpoint whose every delivery has failed for this long is turned off:
/// it is gone in all but name, and its retries cost the worker.
pub const DISABLE_AFTER_FAILING: TimeDelta = TimeDelta::days(5);

/// The least time between two ALERT_REPEATED deliveries of one alert to
/// one endpoint: a storm of repeats is one message an hour, not thousands.
pub const REPEAT_INTERVAL: TimeDelta = TimeDelta::hours(1);

/// What an admin sends to create or change a webhook, before validation.
#[derive(Clone, Debug, Default)]
pub struct RawWebhook {
    pub name: String,
    pub url: String,
    pub triggers: Vec<WebhookTrigger>,
    pub min_severity: Option<Severity>,
    pub sources: Option<Vec<String>>,
    pub format: Option<WebhookFormat>,
}

/// A webhook's settings, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSpec {
    pub name: String,
    /// Parsed and written back in its normal form.
    pub url: String,
    /// Each once, in the enum's order.
    pub triggers: Vec<WebhookTrigger>,
    pub min_severity: Option<Severity>,
    pub sources: Option<Vec<String>>,
    pub format: WebhookFormat,
}

impl WebhookSpec {
    pub fn parse(raw: RawWebhook) -> Result<Self> {
        let name = label("input.name", &raw.name, MAX_LABEL_CHARS)?;
        let url = endpoint(&raw.url)?;
        let mut triggers = raw.triggers;
        if triggers.is_empty() {
            return Err(Error::invalid(
                "input.triggers",
                format!("must name at least one of {}", names(WebhookTrigger::ALL)),
            ));
        }
        triggers.sort_unstable();
        triggers.dedup();
        let sources = match raw.sources {
            None => None,
            Some(list) if list.is_empty() || list.len() > MAX_SOURCES => {
                return Err(Error::invalid(
                    "input.sources",
                    format!(
                        "must name 1 to {MAX_SOURCES} sources, got {}; leave it out for alerts \
                         from every source",
                        list.len()
                    ),
                ))
            }
            Some(list) => {
                let mut sources: Vec<String> = Vec::with_capacity(list.len());
                for (i, s) in list.iter().enumerate() {
                    let s = label(format!("input.sources[{i}]"), s, MAX_LABEL_CHARS)?;
                    if !sources.contains(&s) {
                        sources.push(s);
                    }
                }
                Some(sources)
            }
        };
        Ok(Self {
            name,
            url,
            triggers,
            min_severity: raw.min_severity,
            sources,
            format: raw.format.unwrap_or(WebhookFormat::Standard),
        })
    }

    /// Whether a change of this kind to `alert` is sent to this endpoint.
    pub fn wants(&self, trigger: WebhookTrigger, alert: &AlertWithEvent) -> bool {
        self.triggers.contains(&trigger)
            && self
                .min_severity
                .is_none_or(|min| alert.alert.severity >= min)
            && self
                .sources
                .as_ref()
                .is_none_or(|s| s.contains(&alert.event.source))
    }
}

fn names<T: Copy + Into<&'static str>>(all: &[T]) -> String {
    all.iter()
        .map(|t| (*t).into())
        .collect::<Vec<&str>>()
        .join(", ")
}

/// Checks an endpoint's URL for what can be told without calling it:
/// http(s), a host, no credentials. Which addresses it may reach is
/// checked on the resolved addresses, on every call.
pub fn endpoint(raw: &str) -> Result<String> {
    let field = "input.url";
    let raw = raw.trim();
    let chars = raw.chars().count();
    if chars == 0 || chars > MAX_URL_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {MAX_URL_CHARS} characters, got {chars}"),
        ));
    }
    let url = url::Url::parse(raw).map_err(|e| {
        Error::invalid(
            field,
            format!("is not a URL ({e}); expected https://host/path"),
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Error::invalid(
            field,
            format!("must start with https:// (got {}://)", url.scheme()),
        ));
    }
    if url.host().is_none() {
        return Err(Error::invalid(field, "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(
            field,
            "must not carry a user or password: every admin can read a webhook's URL; \
             receivers check the signature instead",
        ));
    }
    if url.fragment().is_some() {
        return Err(Error::invalid(
            field,
            "must not have a #fragment (it is never sent)",
        ));
    }
    Ok(url.to_string())
}

/// When a failed delivery is tried next, after `attempts` attempts (the
/// failed one included); `None` when it has had its last and is FAILED.
/// A receiver's `Retry-After` (on 429 or 503) is honoured: the next attempt
/// is no sooner than it asks, up to `MAX_RETRY_AFTER`.
pub fn next_attempt(
    attempts: u32,
    now: NaiveDateTime,
    retry_after: Option<Duration>,
) -> Option<NaiveDateTime> {
    let delay = *RETRY_DELAYS.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    let delay = retry_after.map_or(delay, |asked| delay.max(asked.min(MAX_RETRY_AFTER)));
    Some(now + TimeDelta::from_std(delay).ok()?)
}

/// What happened to an alert, as a webhook reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Raised,
    Repeated,
    StatusChanged {
        from: AlertStatus,
        to: AlertStatus,
    },
    /// Owners by username.
    Assigned {
        from: Option<String>,
        to: Option<String>,
    },
    Commented {
        author: String,
        body: String,
    },
}

impl Change {
    pub fn trigger(&self) -> WebhookTrigger {
        match self {
            Self::Raised => WebhookTrigger::AlertRaised,
            Self::Repeated => WebhookTrigger::AlertRepeated,
            Self::StatusChanged { .. } => WebhookTrigger::AlertStatusChanged,
            Self::Assigned { .. } => WebhookTrigger::AlertAssigned,
            Self::Commented { .. } => WebhookTrigger::AlertCommented,
        }
    }

    /// The `type` of a STANDARD body.
    fn kind(&self) -> &'static str {
        match self {
            Self::Raised => "alert.raised",
            Self::Repeated => "alert.repeated",
            Self::StatusChanged { .. } => "alert.status_changed",
            Self::Assigned { .. } => "alert.assigned",
            Self::Commented { .. } => "alert.commented",
        }
    }
}

fn rfc3339(at: NaiveDateTime) -> String {
    at.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A STANDARD body. Serialized straight from borrowed fields: rendering
/// is part of the ingest transaction that queues the change, and building
/// a `serde_json::Value` first cost several times as much. Fields are in
/// the order a JSON map sorts them, the order earlier bodies had.
#[derive(serde::Serialize)]
struct Standard<'a> {
    data: Data<'a>,
    timestamp: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// What changed, beside the alert as it is after the change.
#[derive(serde::Serialize)]
struct Data<'a> {
    alert: AlertBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<CommentBody<'a>>,
    /// STATUS_CHANGED: a status; ASSIGNED: a username or null.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<Option<&'a str>>,
}

#[derive(serde::Serialize)]
struct CommentBody<'a> {
    author: &'a str,
    body: &'a str,
}

/// The alert as the API shows it, for a body's `data.alert`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertBody<'a> {
    assignee: Option<&'a str>,
    created_at: String,
    event: EventBody<'a>,
    id: String,
    last_seen_at: String,
    occurrences: i64,
    severity: &'static str,
    status: &'static str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct EventBody<'a> {
    description: &'a str,
    event_type: &'a str,
    id: String,
    occurred_at: String,
    source: &'a str,
    timestamp: String,
}

fn alert_body<'a>(alert: &'a AlertWithEvent, assignee: Option<&'a str>) -> AlertBody<'a> {
    let a = &alert.alert;
    let e = &alert.event;
    AlertBody {
        assignee,
        created_at: rfc3339(a.created_at),
        event: EventBody {
            description: &e.description,
            event_type: &e.event_type,
            id: e.id.to_string(),
            occurred_at: rfc3339(e.occurred()),
            source: &e.source,
            timestamp: rfc3339(e.created_at),
        },
        id: a.id.to_string(),
        last_seen_at: rfc3339(a.last_seen_at.unwrap_or(a.created_at)),
        occurrences: a.occurrences,
        severity: a.severity.as_str(),
        status: a.status.as_str(),
    }
}

/// The body of one delivery of `change` to `alert`, in `format`, sent as
/// `at`. Rendered once, when the change is committed, and stored: every
/// retry and a redelivery send the same bytes.
pub fn body(
    format: WebhookFormat,
    change: &Change,
    alert: &AlertWithEvent,
    assignee: Option<&str>,
    at: NaiveDateTime,
) -> String {
    match format {
        WebhookFormat::Standard => {
            let mut data = Data {
                alert: alert_body(alert, assignee),
                comment: None,
                from: None,
                to: None,
            };
            match change {
                Change::StatusChanged { from, to } => {
                    data.from = Some(Some(from.as_str()));
                    data.to = Some(Some(to.as_str()));
                }
                Change::Assigned { from, to } => {
                    data.from = Some(from.as_deref());
                    data.to = Some(to.as_deref());
                }
                Change::Commented { author, body } => {
                    data.comment = Some(CommentBody { author, body });
                }
                Change::Raised | Change::Repeated => {}
            }
            let standard = Standard {
                data,
                timestamp: rfc3339(at),
                kind: change.kind(),
            };
            // Serializing plain strings and numbers cannot fail.
            serde_json::to_string(&standard).unwrap_or_default()
        }
        WebhookFormat::Slack => json!({ "text": slack_text(change, alert, assignee) }).to_string(),
    }
}

/// Text for chat: the alert in one line, then what changed. Slack's
/// control characters (`&`, `<`, `>`) in what sensors and people wrote are
/// escaped, so an event cannot mention `@channel` or forge a link.
fn slack_text(change: &Change, alert: &AlertWithEvent, assignee: Option<&str>) -> String {
    let a = &alert.alert;
    let e = &alert.event;
    let head = format!(
        "[{}] alert {} ({}) from {}: {}",
        a.severity,
        a.id,
        a.status,
        escape(&e.source),
        escape(&e.event_type)
    );
    let what = match change {
        Change::Raised => format!("raised: {}", escape(&clip(&e.description, 300))),
        Change::Repeated => format!("repeated, {} occurrences so far", a.occurrences),
        Change::StatusChanged { from, to } => format!("status {from} -> {to}"),
        Change::Assigned { to: Some(to), .. } => format!("assigned to {}", escape(to)),
        Change::Assigned { to: None, .. } => "unassigned".to_string(),
        Change::Commented { author, body } => {
            format!("{} commented: {}", escape(author), escape(&clip(body, 300)))
        }
    };
    let owner = assignee.map_or(String::new(), |u| format!(" (owner {})", escape(u)));
    format!("{head}{owner}\n{what}")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The body of a ping (`testWebhook`).
pub fn ping_body(format: WebhookFormat, webhook: &str, at: NaiveDateTime) -> String {
    match format {
        WebhookFormat::Standard => json!({
            "type": "ping",
            "timestamp": rfc3339(at),
            "data": { "webhook": webhook },
        })
        .to_string(),
        WebhookFormat::Slack => json!({
            "text": format!("threatwatch test message for webhook {}", escape(webhook)),
        })
        .to_string(),
    }
}

/// A webhook's signing secret as stored: sealed under the service's key
/// (`notify::seal`), never the secret itself. Its `Debug` shows nothing
/// all the same, so a record printed whole leaks no ciphertext either.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

/// How long a rotated-out secret keeps signing beside the new one, so that
/// receivers can switch at their own pace.
pub const PREVIOUS_SECRET_FOR: TimeDelta = TimeDelta::hours(24);

/// Most webhooks one service keeps: the `webhooks` list is not paged.
pub const MAX_WEBHOOKS: i64 = 100;

/// A webhook as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookRecord {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub triggers: Vec<WebhookTrigger>,
    pub min_severity: Option<Severity>,
    pub sources: Option<Vec<String>>,
    pub format: WebhookFormat,
    pub enabled: bool,
    /// Why it was turned off (by the service or an admin); `None` while on.
    pub disabled_reason: Option<String>,
    pub secret: Sealed,
    /// The secret before the last rotation, signing beside the new one
    /// until `previous_secret_until`.
    pub previous_secret: Option<Sealed>,
    pub previous_secret_until: Option<NaiveDateTime>,
    /// The first failure since the last success.
    pub failing_since: Option<NaiveDateTime>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl WebhookRecord {
    /// Its settings, for `WebhookSpec::wants`.
    pub fn spec(&self) -> WebhookSpec {
        WebhookSpec {
            name: self.name.clone(),
            url: self.url.clone(),
            triggers: self.triggers.clone(),
            min_severity: self.min_severity,
            sources: self.sources.clone(),
            format: self.format,
        }
    }

    /// The previous secret while it still signs at `now`.
    pub fn live_previous_secret(&self, now: NaiveDateTime) -> Option<&Sealed> {
        self.previous_secret
            .as_ref()
            .filter(|_| self.previous_secret_until.is_some_and(|until| until > now))
    }
}

/// One delivery (or ping) of a body to a webhook: the outbox row.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub webhook_id: i64,
    /// `None` for a ping.
    pub trigger: Option<WebhookTrigger>,
    pub alert_id: Option<i64>,
    pub status: DeliveryStatus,
    /// The `webhook-id` header: the same on every retry.
    pub message_id: String,
    /// Rendered once; every attempt sends these bytes.
    pub body: String,
    pub attempts: i32,
    pub created_at: NaiveDateTime,
    pub last_attempt_at: Option<NaiveDateTime>,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub delivered_at: Option<NaiveDateTime>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    /// Until when the instance attempting it holds it.
    pub locked_until: Option<NaiveDateTime>,
}

/// A delivery to be written: PENDING, due at `at`.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub webhook_id: i64,
    pub trigger: Option<WebhookTrigger>,
    pub alert_id: Option<i64>,
    pub message_id: String,
    pub body: String,
    pub at: NaiveDateTime,
}

/// A new `webhook-id`: "msg_" and 128 random bits, unguessable so that
/// nobody can pre-empt a receiver's duplicate check.
pub fn message_id() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "msg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::AlertRecord;
    use crate::domain::event::EventRecord;
    use serde_json::Value;

    fn raw() -> RawWebhook {
        RawWebhook {
            name: "pager".into(),
            url: "https://hooks.example.com/T1/abc".into(),
            triggers: vec![WebhookTrigger::AlertRaised],
            ..RawWebhook::default()
        }
    }

    fn alert(severity: Severity, source: &str) -> AlertWithEvent {
        let at = chrono::DateTime::from_timestamp(1_764_000_000, 0)
            .unwrap()
            .naive_utc();
        AlertWithEvent {
            alert: AlertRecord {
                id: 7,
                event_id: 9,
                severity,
                status: AlertStatus::Open,
                created_at: at,
                updated_at: at,
                assignee_id: None,
                acknowledged_at: None,
                resolved_at: None,
                occurrences: 3,
                last_seen_at: Some(at),
            },
            event: EventRecord {
                id: 9,
                source: source.into(),
                event_type: "Intrusion".into(),
                severity,
                description: "<!channel> & friends".into(),
                created_at: at,
                external_id: None,
                alert_id: Some(7),
                dedup_key: None,
                silenced_by: None,
                occurred_at: None,
            },
        }
    }

    #[test]
    fn validates_every_field_by_name() {
        let ok = WebhookSpec::parse(RawWebhook {
            triggers: vec![
                WebhookTrigger::AlertCommented,
                WebhookTrigger::AlertRaised,
                WebhookTrigger::AlertRaised,
            ],
            sources: Some(vec![" fw ".into(), "fw".into()]),
            ..raw()
        })
        .unwrap();
        assert_eq!(
            ok.triggers,
            [WebhookTrigger::AlertRaised, WebhookTrigger::AlertCommented]
        );
        assert_eq!(ok.sources, Some(vec!["fw".to_string()]));
        assert_eq!(ok.format, WebhookFormat::Standard);

        let cases: Vec<(RawWebhook, &str)> = vec![
            (
                RawWebhook {
                    name: " ".into(),
                    ..raw()
                },
                "input.name: must not be empty",
            ),
            (
                RawWebhook {
                    triggers: vec![],
                    ..raw()
                },
                "input.triggers: must name at least one of ALERT_RAISED",
            ),
            (
                RawWebhook {
                    url: "ftp://x.example".into(),
                    ..raw()
                },
                "input.url: must start with https://",
            ),
            (
                RawWebhook {
                    url: "hooks.example.com".into(),
                    ..raw()
                },
                "input.url: is not a URL",
            ),
            (
                RawWebhook {
                    url: "https://u:p@x.example/".into(),
                    ..raw()
                },
                "input.url: must not carry a user",
            ),
            (
                RawWebhook {
                    url: format!("https://x.example/{}", "a".repeat(2_000)),
                    ..raw()
                },
                "input.url: must be 1 to 2000",
            ),
            (
                RawWebhook {
                    sources: Some(vec![]),
                    ..raw()
                },
                "input.sources: must name 1 to 100",
            ),
            (
                RawWebhook {
                    sources: Some(vec!["a\u{1}".into()]),
                    ..raw()
                },
                "input.sources[0]: must not contain control",
            ),
        ];
        for (input, start) in cases {
            let err = WebhookSpec::parse(input).unwrap_err();
            assert_eq!(err.code(), "BAD_USER_INPUT");
            assert!(err.to_string().starts_with(start), "{err} / {start}");
        }
    }

    #[test]
    fn filters_by_trigger_severity_and_source() {
        let spec = WebhookSpec::parse(RawWebhook {
            min_severity: Some(Severity::Critical),
            sources: Some(vec!["fw".into()]),
            ..raw()
        })
        .unwrap();
        let raised = WebhookTrigger::AlertRaised;
        assert!(spec.wants(raised, &alert(Severity::Critical, "fw")));
        assert!(!spec.wants(raised, &alert(Severity::High, "fw")));
        assert!(!spec.wants(raised, &alert(Severity::Critical, "ids")));
        assert!(!spec.wants(
            WebhookTrigger::AlertAssigned,
            &alert(Severity::Critical, "fw")
        ));
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let now = crate::domain::now();
        let after = |n, ra| next_attempt(n, now, ra).map(|t| (t - now).num_seconds());
        assert_eq!(after(1, None), Some(5));
        assert_eq!(after(2, None), Some(300));
        assert_eq!(after(7, None), Some(36_000));
        assert_eq!(after(8, None), None, "eight attempts, then FAILED");
        assert_eq!(after(0, None), None);
        // Retry-After holds the next attempt back, never brings it forward.
        assert_eq!(after(1, Some(Duration::from_secs(120))), Some(120));
        assert_eq!(after(2, Some(Duration::from_secs(1))), Some(300));
        assert_eq!(
            after(1, Some(Duration::from_secs(10 * 86_400))),
            Some(86_400)
        );
    }

    #[test]
    fn standard_bodies_carry_the_alert_and_the_change() {
        let at = crate::domain::now();
        let a = alert(Severity::High, "fw");
        let change = Change::StatusChanged {
            from: AlertStatus::Open,
            to: AlertStatus::Acknowledged,
        };
        let v: Value =
            serde_json::from_str(&body(WebhookFormat::Standard, &change, &a, Some("ana"), at))
                .unwrap();
        assert_eq!(v["type"], "alert.status_changed");
        assert_eq!(v["data"]["from"], "OPEN");
        assert_eq!(v["data"]["to"], "ACKNOWLEDGED");
        assert_eq!(v["data"]["alert"]["id"], "7");
        assert_eq!(v["data"]["alert"]["assignee"], "ana");
        assert_eq!(v["data"]["alert"]["occurrences"], 3);
        assert_eq!(v["data"]["alert"]["event"]["source"], "fw");
        let comment = Change::Commented {
            author: "ana".into(),
            body: "on it".into(),
        };
        let v: Value =
            serde_json::from_str(&body(WebhookFormat::Standard, &comment, &a, None, at)).unwrap();
        assert_eq!(
            v["data"]["comment"],
            json!({ "author": "ana", "body": "on it" })
        );
        let ping: Value =
            serde_json::from_str(&ping_body(WebhookFormat::Standard, "pager", at)).unwrap();
        assert_eq!(ping["type"], "ping");
    }

    /// Bodies are written with their keys in the order a JSON map sorts
    /// them, as they were when built as maps, and carry exactly the keys
    /// each change has: nulls only where a value is absent (an assignee,
    /// an unassignment), never a key of another kind of change.
    #[test]
    fn standard_bodies_are_written_as_a_sorted_map() {
        let at = crate::domain::now();
        let a = alert(Severity::High, "fw \"quoted\"\n");
        let changes = [
            Change::Raised,
            Change::Repeated,
            Change::StatusChanged {
                from: AlertStatus::Open,
                to: AlertStatus::Resolved,
            },
            Change::Assigned {
                from: Some("ana".into()),
                to: None,
            },
            Change::Commented {
                author: "ana".into(),
                body: "<b>on it</b> \u{1F600}".into(),
            },
        ];
        for change in &changes {
            for assignee in [None, Some("ana")] {
                let text = body(WebhookFormat::Standard, change, &a, assignee, at);
                let map: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(map.to_string(), text, "{change:?}");
                let data = map["data"].as_object().unwrap();
                let keys: Vec<&str> = data.keys().map(String::as_str).collect();
                let expected: &[&str] = match change {
                    Change::Raised | Change::Repeated => &["alert"],
                    Change::StatusChanged { .. } | Change::Assigned { .. } => {
                        &["alert", "from", "to"]
                    }
                    Change::Commented { .. } => &["alert", "comment"],
                };
                assert_eq!(keys, expected, "{change:?}");
            }
        }
        let unassigned = body(WebhookFormat::Standard, &changes[3], &a, None, at);
        let v: Value = serde_json::from_str(&unassigned).unwrap();
        assert_eq!(v["data"]["from"], "ana");
        assert!(v["data"]["to"].is_null());
    }

    #[test]
    fn slack_bodies_cannot_mention_or_link() {
        let a = alert(Severity::Critical, "fw");
        let v: Value = serde_json::from_str(&body(
            WebhookFormat::Slack,
            &Change::Raised,
            &a,
            None,
            crate::domain::now(),
        ))
        .unwrap();
        let text = v["text"].as_str().unwrap();
        assert!(
            text.starts_with("[CRITICAL] alert 7 (OPEN) from fw: Intrusion"),
            "{text}"
        );
        assert!(text.contains("&lt;!channel&gt; &amp; friends"), "{text}");
        assert!(!text.contains('<'), "{text}");
        let long = Change::Commented {
            author: "a".into(),
            body: "é".repeat(1_000),
        };
        let v: Value = serde_json::from_str(&body(
            WebhookFormat::Slack,
            &long,
            &a,
            None,
            crate::domain::now(),
        ))
        .unwrap();
        assert!(v["text"].as_str().unwrap().chars().count() < 500);
    }
}
