//! One delivery attempt: a signed POST to a receiver, made so that an
//! endpoint cannot turn the service against its own network or hold it up.
//!
//! - Names are resolved by our own resolver, which drops every address the
//!   `AddressPolicy` refuses, and the connection is made to the addresses
//!   it returned: a name cannot pass the check and then connect elsewhere.
//!   A URL with an address in place of a name never reaches a resolver, so
//!   it is checked here before the request.
//! - No redirects (a 3xx is a failed attempt: a redirect would lead the
//!   request past the address check), no proxy from the environment, a
//!   whole-attempt timeout, and at most a short excerpt of the answer read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::StatusCode;

use super::address::AddressPolicy;
use super::sign::{signature_header, Secret};

/// The longest an attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// How much of a receiver's answer is read: enough for an error line in
/// `lastError`, never a receiver's whole page.
const EXCERPT_BYTES: usize = 512;
/// The characters of that excerpt kept in `lastError`.
const EXCERPT_CHARS: usize = 200;

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx.
    Delivered { status: u16 },
    /// Anything else. `status` is the receiver's, when it answered at all;
    /// `error` says what went wrong in words for `lastError`.
    Failed {
        status: Option<u16>,
        error: String,
        /// The receiver's `Retry-After`, on 429 and 503.
        retry_after: Option<Duration>,
        /// 410 Gone: the receiver says the endpoint is no more.
        gone: bool,
    },
}

/// One delivery to make.
pub struct Delivery<'a> {
    pub url: &'a str,
    /// The `webhook-id`: the same on every retry of one delivery.
    pub message_id: &'a str,
    /// The `webhook-timestamp`, Unix seconds.
    pub timestamp: i64,
    pub body: &'a str,
    /// The endpoint's live secrets, newest first.
    pub secrets: &'a [Secret],
}

/// Makes attempts; cheap to clone, one per service.
#[derive(Clone)]
pub struct Sender {
    /// For `https://` URLs, and for `http://` ones: the latter may reach
    /// only listed addresses, so each has its own resolver.
    https: reqwest::Client,
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

impl Sender {
    pub fn new(policy: AddressPolicy, timeout: Duration) -> anyhow::Result<Self> {
        let policy = Arc::new(policy);
        let client = |plain_http: bool| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(
                USER_AGENT,
                HeaderValue::from_static(concat!("threatwatch/", env!("CARGO_PKG_VERSION"))),
            );
            reqwest::Client::builder()
                .default_headers(headers)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .timeout(timeout)
                .connect_timeout(timeout)
                .dns_resolver(Arc::new(CheckedResolver {
                    policy: policy.clone(),
                    plain_http,
                }))
                .build()
        };
        Ok(Self {
            https: client(false)?,
            http: client(true)?,
            policy,
        })
    }

    /// Posts `d` once and says how it went; never fails otherwise.
    pub async fn attempt(&self, d: &Delivery<'_>) -> Answer {
        let failed = |error: String| Answer::Failed {
            status: None,
            error,
            retry_after: None,
            gone: false,
        };
        let url = match reqwest::Url::parse(d.url) {
            Ok(url) => url,
            Err(e) => return failed(format!("the URL does not parse: {e}")),
        };
        let plain_http = match url.scheme() {
            "https" => false,
            "http" => true,
            other => return failed(format!("{other}:// is not sent to")),
        };
        // An address in the URL is connected to without any resolver.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(why) = literal.and_then(|ip| self.policy.refusal(ip, plain_http)) {
            return failed(format!("refused address: {why}"));
        }
        let client = if plain_http { &self.http } else { &self.https };
        let signature = signature_header(d.secrets, d.message_id, d.timestamp, d.body.as_bytes());
        let sent = client
            .post(url)
            .header("webhook-id", d.message_id)
            .header("webhook-timestamp", d.timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.body.to_owned())
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return failed(describe(&e)),
        };
        let status = response.status();
        if status.is_success() {
            return Answer::Delivered {
                status: status.as_u16(),
            };
        }
        let retry_after = match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(retry_after),
            _ => None,
        };
        let excerpt = excerpt(&mut response).await;
        let reason = status.canonical_reason().unwrap_or("");
        let mut error = format!("HTTP {} {reason}", status.as_u16());
        if status.is_redirection() {
            error.push_str(" (redirects are not followed; give the final URL)");
        }
        if !excerpt.is_empty() {
            error.push_str(": ");
            error.push_str(&excerpt);
        }
        Answer::Failed {
            status: Some(status.as_u16()),
            error,
            retry_after,
            gone: status == StatusCode::GONE,
        }
    }
}

/// The start of a receiver's answer, as text on one line.
async fn excerpt(response: &mut reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(EXCERPT_BYTES);
    let text = String::from_utf8_lossy(&bytes);
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(EXCERPT_CHARS)
        .collect();
    line.truncate(line.trim_end().len());
    line
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Why a request got no answer, in words: the refused address, a timeout,
/// a refused connection, TLS. Never the URL (it may carry a token in its
/// path) and never a secret.
fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<Refused>() {
            return format!("refused address: {}", refused.0);
        }
        source = s.source();
    }
    if e.is_timeout() {
        return format!("no answer within {} s (timeout)", ATTEMPT_TIMEOUT.as_secs());
    }
    let mut text = String::from(if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    });
    // The innermost cause names the reason (refused, reset, a TLS alert).
    let mut inner: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = inner {
        last = Some(s.to_string());
        inner = s.source();
    }
    if let Some(cause) = last {
        text.push_str(": ");
        text.extend(cause.chars().take(EXCERPT_CHARS));
    }
    text
}

/// Every address of a name was refused.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The system resolver, keeping only the addresses the policy allows.
struct CheckedResolver {
    policy: Arc<AddressPolicy>,
    plain_http: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let plain_http = self.plain_http;
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let mut why = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.refusal(a.ip(), plain_http) {
                    None => true,
                    Some(reason) => {
                        why.get_or_insert(reason);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = why.unwrap_or_else(|| format!("{} has no address", name.as_str()));
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap as Headers, StatusCode as Status};
    use axum::routing::post;

    /// A receiver on loopback that answers by path, and the URL it listens on.
    async fn receiver() -> String {
        let app = axum::Router::new()
            .route(
                "/ok",
                post(|h: Headers, body: String| async move {
                    let sig = h["webhook-signature"]
                        .to_str()
                        .unwrap_or_default()
                        .to_owned();
                    (Status::OK, format!("{sig}|{body}"))
                }),
            )
            .route("/gone", post(|| async { Status::GONE }))
            .route(
                "/busy",
                post(|| async {
                    (
                        Status::TOO_MANY_REQUESTS,
                        [("retry-after", "120")],
                        "slow down",
                    )
                }),
            )
            .route(
                "/moved",
                post(|| async { (Status::FOUND, [("location", "http://169.254.169.254/")], "") }),
            )
            .route(
                "/noisy",
                post(|| async { (Status::INTERNAL_SERVER_ERROR, "x\u{1b}[31m".repeat(10_000)) }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Status::OK
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn loopback_allowed() -> Sender {
        let policy = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        Sender::new(policy, Duration::from_millis(500)).unwrap()
    }

    async fn send(sender: &Sender, url: &str) -> Answer {
        let secrets = [Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap()];
        sender
            .attempt(&Delivery {
                url,
                message_id: "msg_1",
                timestamp: 1_649_367_553,
                body: "{}",
                secrets: &secrets,
            })
            .await
    }

    fn failure(a: Answer) -> (Option<u16>, String, Option<Duration>, bool) {
        match a {
            Answer::Failed {
                status,
                error,
                retry_after,
                gone,
            } => (status, error, retry_after, gone),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn answers_are_told_apart() {
        let base = receiver().await;
        let sender = loopback_allowed();
        assert_eq!(
            send(&sender, &format!("{base}/ok")).await,
            Answer::Delivered { status: 200 }
        );
        let (status, _, _, gone) = failure(send(&sender, &format!("{base}/gone")).await);
        assert_eq!((status, gone), (Some(410), true));
        let (status, error, retry, _) = failure(send(&sender, &format!("{base}/busy")).await);
        assert_eq!((status, retry), (Some(429), Some(Duration::from_secs(120))));
        assert!(error.ends_with(": slow down"), "{error}");
        let (status, error, _, _) = failure(send(&sender, &format!("{base}/moved")).await);
        assert_eq!(status, Some(302));
        assert!(error.contains("redirects are not followed"), "{error}");
        let (_, error, _, _) = failure(send(&sender, &format!("{base}/noisy")).await);
        assert!(
            error.chars().count() < 260 && !error.contains('\u{1b}'),
            "{error}"
        );
        let (status, error, _, _) = failure(send(&sender, &format!("{base}/slow")).await);
        assert_eq!(status, None);
        assert!(error.contains("timeout"), "{error}");
    }

    #[tokio::test]
    async fn refused_addresses_are_never_called() {
        let base = receiver().await;
        let sender = Sender::new(AddressPolicy::default(), Duration::from_millis(500)).unwrap();
        // By address, by name (through the resolver), and plain http to a
        // public address.
        let port = base.rsplit(':').next().unwrap();
        for url in [
            format!("{base}/ok"),
            format!("http://localhost:{port}/ok"),
            format!("http://[::ffff:127.0.0.1]:{port}/ok"),
            "https://169.254.169.254/latest/meta-data".to_string(),
            "http://93.184.215.14/".to_string(),
        ] {
            let (status, error, _, _) = failure(send(&sender, &url).await);
            assert_eq!(status, None, "{url}");
            assert!(error.starts_with("refused address: "), "{url}: {error}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after(" 30 "), Some(Duration::from_secs(30)));
        let later = std::time::SystemTime::now() + Duration::from_secs(3_600);
        let secs = retry_after(&httpdate::fmt_http_date(later))
            .unwrap()
            .as_secs();
        assert!((3_590..=3_600).contains(&secs), "{secs}");
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
