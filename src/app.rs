//! Startup: builds the service and its router, binds, serves, and shuts
//! down in order (stop accepting, finish requests, commit queued ingests).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::graphql;
use crate::http::{self, AppState};
use crate::ingest::WriterTask;
use crate::service::{self, Service};
use crate::web;
use crate::ws;

/// Large enough for `ingestEvents` with 1,000 typical events; a request
/// past it is refused with 413 before it is read into memory.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The longest a request may take before it is answered with 408; a
/// stuck query must not hold a connection and a database slot forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A started (bound, migrated) server that has not begun serving yet.
pub struct Server {
    listener: TcpListener,
    router: Router,
    /// `/metrics` on an address of its own (`THREATWATCH_METRICS_BIND`).
    metrics: Option<(TcpListener, Router)>,
    service: Service,
    writer: WriterTask,
    /// The webhook delivery worker (`notify::worker`).
    deliveries: tokio::task::JoinHandle<()>,
    /// Retention's passes (`service::retention`), when it is on.
    retention: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds, migrates the database, and bootstraps the first admin.
    ///
    /// Binding comes first: a start that cannot listen (the port is busy)
    /// changes nothing, above all it creates no admin whose password nobody
    /// would see, after which the next start would find a user and print
    /// none. Connections that arrive meanwhile wait in the listen queue and
    /// are answered once serving begins, when the admin exists.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        for warning in &settings.warnings {
            tracing::warn!("{warning}");
        }
        let bind = settings.bind;
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|e| anyhow::anyhow!("THREATWATCH_BIND: cannot listen on {bind}: {e}"))?;
        let metrics_listener = match settings.metrics_bind {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                anyhow::anyhow!("THREATWATCH_METRICS_BIND: cannot listen on {addr}: {e}")
            })?),
            None => None,
        };
        let applied = service::migrate(&settings.database_url).await?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "database migrated");
        }
        let pool_size = settings.db_pool_size;
        let (service, writer) = Service::open(settings, pool_size).await?;
        if let Some(password) = service.bootstrap_admin().await? {
            print_admin_password(&password);
        }
        let metrics = metrics_listener.map(|l| (l, metrics_router(&service)));
        let router = router(&service, metrics.is_none())?;
        service::live::start(&service);
        let deliveries = crate::notify::worker::start(&service)?;
        let retention = tokio::spawn(service::retention::run(service.clone()));
        Ok(Self {
            listener,
            router,
            metrics,
            service,
            writer,
            deliveries,
            retention,
        })
    }

    /// Where `/metrics` is served when it has an address of its own.
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.metrics.as_ref().map(|(l, _)| l.local_addr())
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests
    /// finish and commits every ingest already accepted.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            metrics,
            service,
            writer,
            deliveries,
            retention,
        } = self;
        tracing::info!(
            addr = %listener.local_addr()?,
            database = service.database_backend(),
            "threatwatch serving; console at /, GraphiQL at /graphql"
        );
        let closing = service.shutdown.clone();
        let metrics_task = metrics.map(|(listener, router)| {
            let mut closed = service.shutdown.subscribe();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = closed.wait_for(|closed| *closed).await;
                };
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "the /metrics listener failed");
                }
            })
        });
        let shutdown = async move {
            shutdown.await;
            // Subscriptions are upgraded connections that graceful shutdown
            // does not wait for: tell them to close now.
            let _ = closing.send(true);
        };
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        writer.shutdown().await;
        // Stops on the shutdown flag, once its attempts in flight are recorded.
        let _ = deliveries.await;
        // Stops on the shutdown flag too, after recording what its pass
        // removed; the runtime must not end under a step.
        let _ = retention.await;
        service.flush_key_usage().await;
        tracing::info!("threatwatch stopped");
        Ok(())
    }
}

/// The generated password goes to standard error as a plain line, for the
/// person who started the service: never through the log, which may be
/// JSON shipped to a SIEM and kept there.
fn print_admin_password(password: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\nCreated user 'admin' with password: {password}\n\
         Keep it now; it is not shown again. Set THREATWATCH_ADMIN_PASSWORD to choose it.\n"
    );
    let _ = err.flush();
}

/// `/metrics` alone, for its own address: no GraphQL, no CORS, no quotas.
fn metrics_router(service: &Service) -> Router {
    Router::new()
        .route("/metrics", get(http::metrics_of))
        .with_state(service.clone())
}

fn router(service: &Service, with_metrics: bool) -> anyhow::Result<Router> {
    let schema = graphql::Gateway::new(service.clone());
    let state = AppState {
        service: service.clone(),
        schema,
        large_requests: std::sync::Arc::new(tokio::sync::Semaphore::new(
            http::large_request_permits(),
        )),
    };
    let cors = cors(&service.settings.cors_origins)?;
    let trace = TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
        let id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::info_span!("request", id, method = %req.method(), path = %req.uri().path())
    });
    let mut routes = Router::new();
    if service.settings.rest_compat {
        routes = routes.merge(crate::rest::routes());
    }
    if with_metrics {
        routes = routes.route("/metrics", get(http::metrics));
    }
    Ok(routes
        .route("/", get(web::console))
        .route("/assets/{*path}", get(web::asset))
        .route("/graphql", get(web::playground).post(http::graphql))
        .route("/graphql/ws", get(ws::subscriptions))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        // One layer, outermost first. Each `Router::layer` call boxes every
        // route once more, and each box is cloned for every request: nine
        // separate calls cost about 6 µs of CPU a request, an eighth of a
        // single-event ingest.
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(RequestIds::default()))
                .layer(trace)
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(SetResponseHeaderLayer::overriding(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_FRAME_OPTIONS,
                    HeaderValue::from_static("DENY"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(cors)
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    REQUEST_TIMEOUT,
                ))
                .layer(http::TrackLayer),
        )
        .with_state(state))
}

fn cors(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let origins = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o).map_err(|_| {
                anyhow::anyhow!("THREATWATCH_CORS_ORIGINS: {o:?} is not a valid origin")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-api-key"),
        ])
        .max_age(Duration::from_secs(600)))
}

/// Request ids for requests that bring none: a random per-process prefix
/// and a counter. Unique per instance and across restarts, and free, where a
/// UUID per request costs a getrandom system call.
#[derive(Clone)]
struct RequestIds {
    prefix: std::sync::Arc<str>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self {
            prefix: crate::auth::token::random_secret(6).into(),
            next: Default::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests and queued ingests");
}
