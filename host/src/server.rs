//! The HTTP trigger: accepts connections, routes requests, runs a fresh component instance
//! per request and streams bodies both ways.
//!
//! Mirrors spinframework/spin crates/trigger-http/src/server.rs, headers.rs and wasi.rs:
//! - each connection is served by hyper-util's `auto::Builder` (HTTP/1.1 with keep-alive,
//!   and HTTP/2 with prior knowledge on the same port), with hyper's defaults except
//!   `http1_max_buf_size` (`--http1-max-buf-size` / `SPIN_HTTP1_MAX_BUF_SIZE`, as Spin);
//!   no `TCP_NODELAY`;
//! - `/.well-known/spin/health` answers `OK` and `/.well-known/spin/info` the app's name
//!   and version; other `/.well-known/spin/...` paths and unrouted paths are 404 with an
//!   empty body;
//! - a `Host` of a service-chaining name (`<component>.spin.internal`) and the
//!   `Connection` header are removed; a routed request whose authority cannot be told
//!   (no `Host` and none in the URI, an invalid `Host`, or one that differs from the
//!   URI's) fails: the connection is closed without an answer;
//! - the request the component sees has an absolute URI (`http://<authority><path>`) and,
//!   after the client's headers (a header value that is not UTF-8 is a 500), the `spin-*`
//!   headers appended in Spin's order: `spin-path-info`, `spin-full-url` (from the `Host`
//!   header, `localhost` without one), `spin-matched-route`, `spin-base-path` (`/`),
//!   `spin-raw-component-route`, `spin-component-route`, `spin-client-addr` and
//!   `spin-path-match-<param>` for each `:param` (lower-cased, `_` turned into `-`); a
//!   client-sent header of the same name stays before Spin's;
//! - unlike Spin, hyper's own answers to a head it cannot parse (400, 414, 431) carry
//!   Glance's JSON error body ([`crate::error_bodies`]);
//! - a guest that traps, or returns without a response, or sets an error instead of one,
//!   gets a 500 with an empty body (logged on stderr); one that traps after sending the
//!   response head ends the body.
//!
//! Unlike Spin, connections have timeouts ([`ConnTimeouts`]): a request head must arrive
//! within the header timeout, and a connection with no request in flight is closed after
//! the idle timeout.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};

use crate::error_bodies::{ErrorBodies, Requests};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::router::{RouteMatch, Router};
use crate::runtime::{AppState, PreparedComponent};

const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

/// The running application: routes, prepared components and shared state.
pub struct Server {
    /// Request router; `RouteEntry::component` indexes `components`.
    pub router: Router,
    /// Prepared components.
    pub components: Vec<PreparedComponent>,
    /// Shared application state.
    pub app: AppState,
    /// `[application] name`.
    pub app_name: String,
    /// `[application] version`.
    pub app_version: Option<String>,
    /// Log one line per request on stderr (`GLANCE_HOST_LOG`).
    pub log_requests: bool,
    /// Connection settings.
    pub conn: ConnSettings,
}

/// How connections are served.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnSettings {
    /// hyper's HTTP/1 buffer limit (Spin's `--http1-max-buf-size`); `None`: hyper's default.
    pub http1_max_buf_size: Option<usize>,
    /// Timeouts (a glance-host addition).
    pub timeouts: ConnTimeouts,
}

/// Connection timeouts, which Spin does not have (it holds a connection as long as the
/// client does).
#[derive(Debug, Clone, Copy)]
pub struct ConnTimeouts {
    /// A request head must be complete this long after the connection opened or went
    /// idle: hyper's HTTP/1 `header_read_timeout`, which hyper also runs while a
    /// keep-alive connection waits for its next request. Before a connection's first
    /// request (HTTP/1 or HTTP/2, still silent or undecided) glance-host applies it too.
    pub header: Option<Duration>,
    /// A connection with no request in flight (no request read and no response body
    /// being sent) is closed after this long: HTTP/2 connections, and HTTP/1 ones when
    /// the header timeout is longer or off.
    pub idle: Option<Duration>,
}

impl Default for ConnTimeouts {
    fn default() -> Self {
        Self {
            header: Some(Duration::from_secs(30)),
            idle: Some(Duration::from_secs(60)),
        }
    }
}

impl ConnTimeouts {
    /// The defaults, changed by `GLANCE_HOST_HEADER_TIMEOUT_MS` and
    /// `GLANCE_HOST_IDLE_TIMEOUT_MS` (milliseconds; `0` turns a timeout off).
    pub fn from_env() -> anyhow::Result<Self> {
        let mut t = Self::default();
        let read = |name: &str, slot: &mut Option<Duration>| -> anyhow::Result<()> {
            if let Ok(v) = std::env::var(name) {
                let ms: u64 = v
                    .trim()
                    .parse()
                    .with_context(|| format!("{name}={v:?} is not a number of milliseconds"))?;
                *slot = (ms > 0).then(|| Duration::from_millis(ms));
            }
            Ok(())
        };
        read("GLANCE_HOST_HEADER_TIMEOUT_MS", &mut t.header)?;
        read("GLANCE_HOST_IDLE_TIMEOUT_MS", &mut t.idle)?;
        Ok(t)
    }
}

/// What a connection's watchdog knows: requests in flight and since when none has been.
struct ConnActivity {
    in_flight: AtomicUsize,
    seen_request: AtomicBool,
    idle_since: Mutex<Instant>,
}

impl ConnActivity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            seen_request: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
        })
    }

    fn enter(self: &Arc<Self>) -> InFlight {
        self.seen_request.store(true, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// When the connection expires if nothing happens meanwhile (`None`: a request is in
    /// flight, or no timeout applies).
    fn deadline(&self, t: &ConnTimeouts) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        let limit = if self.seen_request.load(Ordering::SeqCst) {
            t.idle
        } else {
            match (t.header, t.idle) {
                (Some(h), Some(i)) => Some(h.min(i)),
                (h, i) => h.or(i),
            }
        }?;
        Some(since + limit)
    }
}

/// One request in flight on a connection: from its head until its response body is
/// sent or dropped.
struct InFlight(Arc<ConnActivity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *since = Instant::now();
        }
    }
}

type Body = HyperOutgoingBody;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

fn status_only(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

impl Server {
    /// Accepts connections forever (HTTP/1.1 with keep-alive, and HTTP/2).
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        loop {
            let (stream, client) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    eprintln!("glance-host: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = self.clone();
            tokio::spawn(async move { server.serve_connection(stream, client).await });
        }
    }

    async fn serve_connection(self: Arc<Self>, stream: tokio::net::TcpStream, client: SocketAddr) {
        let settings = self.conn;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        if let Some(size) = settings.http1_max_buf_size {
            builder.http1().max_buf_size(size);
        }
        if let Some(t) = settings.timeouts.header {
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(t);
        }
        let activity = ConnActivity::new();
        let server = self.clone();
        let watched = activity.clone();
        let requests = Requests::default();
        let started = requests.clone();
        let service = hyper::service::service_fn(move |req| {
            let server = server.clone();
            let sending = started.started();
            let in_flight = watched.enter();
            async move {
                let response = server.handle(req, client).await?;
                // The request stays in flight until its body is sent (or dropped).
                Ok::<_, anyhow::Error>(response.map(|body| {
                    body.map_frame(move |frame| {
                        let _ = (&in_flight, &sending);
                        frame
                    })
                    .boxed_unsync()
                }))
            }
        });
        let conn =
            builder.serve_connection(TokioIo::new(ErrorBodies::new(stream, requests)), service);
        tokio::pin!(conn);
        let result = loop {
            let wake = activity
                .deadline(&settings.timeouts)
                .map(tokio::time::Instant::from_std);
            let busy_recheck = settings.timeouts.idle.or(settings.timeouts.header);
            let sleep = async {
                match (wake, busy_recheck) {
                    (Some(at), _) => tokio::time::sleep_until(at).await,
                    // Busy: look again later (when the request may be over).
                    (None, Some(d)) => tokio::time::sleep(d).await,
                    (None, None) => std::future::pending().await,
                }
            };
            tokio::select! {
                r = conn.as_mut() => break r,
                _ = sleep => {
                    let expired = activity
                        .deadline(&settings.timeouts)
                        .is_some_and(|d| d <= Instant::now());
                    if expired {
                        if server_log_enabled() {
                            eprintln!("glance-host: connection from {client}: closed (timeout)");
                        }
                        conn.as_mut().graceful_shutdown();
                        // HTTP/2 says GOAWAY first; give it a moment, then drop.
                        let _ = tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await;
                        return;
                    }
                }
            }
        };
        if let Err(e) = result {
            if server_log_enabled() {
                eprintln!("glance-host: connection from {client}: {e}");
            }
        }
    }

    /// One request. `Err` (as in Spin) makes hyper close the connection without an answer.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<Response<Body>> {
        let started = self.log_requests.then(Instant::now);
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let (response, component) = self.dispatch(req, client).await;
        if let Some(t) = started {
            let outcome = match &response {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) => format!("failed ({e:#})"),
            };
            eprintln!(
                "{method} {path} -> {} {outcome} in {:.3} ms",
                component.unwrap_or("-"),
                t.elapsed().as_secs_f64() * 1000.0
            );
        }
        response
    }

    async fn dispatch(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
    ) -> (Result<Response<Body>>, Option<&str>) {
        strip_forbidden_headers(&mut req);
        let path = req.uri().path().to_string();
        if let Some(well_known) = path.strip_prefix(WELL_KNOWN_PREFIX) {
            return (Ok(self.well_known(well_known)), None);
        }
        let Some(route) = self.router.route(&path) else {
            return (Ok(status_only(StatusCode::NOT_FOUND)), None);
        };
        let component = &self.components[route.entry.component];
        // As Spin's `set_req_uri`: an error fails the request (no answer).
        if let Err(e) = set_req_uri(&mut req) {
            eprintln!("glance-host: request for {path} failed: {e:#}");
            return (Err(e), Some(&component.id));
        }
        let prepared = prepare_headers(&mut req, &route, client);
        let ran = match prepared {
            Ok(()) => self.run(component, req).await,
            Err(e) => Err(e),
        };
        match ran {
            Ok(resp) => (Ok(resp), Some(&component.id)),
            Err(e) => {
                eprintln!(
                    "glance-host: error processing request for component `{}`: {e:#}",
                    component.id
                );
                (
                    Ok(status_only(StatusCode::INTERNAL_SERVER_ERROR)),
                    Some(&component.id),
                )
            }
        }
    }

    fn well_known(&self, rest: &str) -> Response<Body> {
        match rest {
            "health" => Response::new(full(Bytes::from_static(b"OK"))),
            "info" => {
                let mut info = serde_json::json!({ "name": self.app_name });
                if let Some(v) = &self.app_version {
                    info["version"] = v.clone().into();
                }
                let body = serde_json::to_vec_pretty(&info).unwrap_or_default();
                let mut r = Response::new(full(body));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            _ => status_only(StatusCode::NOT_FOUND),
        }
    }

    /// Instantiates the component and runs `wasi:http/incoming-handler.handle`.
    async fn run(
        &self,
        component: &PreparedComponent,
        req: Request<Incoming>,
    ) -> Result<Response<Body>> {
        let (mut store, proxy) = component
            .instantiate(&self.app)
            .await
            .context("failed to instantiate component")?;
        let mut view = store.data_mut().http();
        let request = view.new_incoming_request(Scheme::Http, req)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let out = view.new_response_outparam(tx)?;
        let task = tokio::spawn(async move {
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, out)
                .await
        });
        match rx.await {
            Ok(Ok(response)) => {
                let id = component.id.clone();
                tokio::spawn(async move {
                    match task.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => eprintln!(
                            "glance-host: component `{id}` failed after its response started (the response may be incomplete): {e:#}"
                        ),
                        Err(e) => eprintln!("glance-host: component `{id}` task failed: {e}"),
                    }
                });
                Ok(response)
            }
            Ok(Err(code)) => {
                // The guest set an error instead of a response: a 500 now, as in Spin,
                // while the guest runs on.
                let id = component.id.clone();
                tokio::spawn(async move {
                    if let Ok(Err(e)) = task.await {
                        eprintln!("glance-host: component `{id}` failed: {e:#}");
                    }
                });
                Err(anyhow!("guest failed to produce a response: {code:?}"))
            }
            Err(_) => match task.await {
                Ok(Ok(())) => Err(anyhow!(
                    "guest failed to produce a response prior to returning"
                )),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("guest invocation failed")),
                Err(e) => Err(anyhow!("guest invocation panicked: {e}")),
            },
        }
    }
}

fn server_log_enabled() -> bool {
    std::env::var_os("GLANCE_HOST_LOG").is_some()
}

/// Spin's `strip_forbidden_headers`: a service-chaining `Host` and `Connection` go.
fn strip_forbidden_headers(req: &mut Request<Incoming>) {
    let headers = req.headers_mut();
    if headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(is_service_chaining_host)
    {
        headers.remove(http::header::HOST);
    }
    headers.remove(http::header::CONNECTION);
}

/// `<component>.spin.internal[:port]`, the names Spin's service chaining uses.
fn is_service_chaining_host(host: &str) -> bool {
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host.split_once('.')
        .is_some_and(|(_, rest)| rest == "spin.internal")
}

/// Spin's `set_req_uri`: the URI becomes absolute, its authority from the `Host` header
/// or the URI (which must agree).
fn set_req_uri(req: &mut Request<Incoming>) -> Result<()> {
    let uri_authority = req.uri().authority().cloned();
    let host_header = req
        .headers()
        .get(http::header::HOST)
        .map(|h| -> Result<http::uri::Authority> {
            h.to_str()
                .context("'Host' header is not valid UTF-8")?
                .parse()
                .context("'Host' header contains an invalid authority")
        })
        .transpose()?;
    let authority = match (host_header, uri_authority) {
        (None, None) => return Err(anyhow!("no 'Host' header present in request")),
        (Some(a), None) | (None, Some(a)) => a,
        (Some(a), Some(b)) => {
            anyhow::ensure!(
                a == b,
                "authority in 'Host' header does not match authority in URI"
            );
            a
        }
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    *req.uri_mut() = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path_and_query)
        .build()?;
    Ok(())
}

/// Spin's `prepare_request_headers`: the client's headers (each value must be UTF-8)
/// followed by Spin's, appended, so a client-sent `spin-*` header comes first.
fn prepare_headers(
    req: &mut Request<Incoming>,
    route: &RouteMatch<'_>,
    client: SocketAddr,
) -> Result<()> {
    for (name, value) in req.headers() {
        std::str::from_utf8(value.as_bytes())
            .with_context(|| format!("header {name} is not valid UTF-8"))?;
    }
    let host = match req.headers().get(http::header::HOST) {
        Some(h) => std::str::from_utf8(h.as_bytes())?.to_string(),
        None => "localhost".to_string(),
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let full_url = format!("http://{host}{path_and_query}");

    let headers = req.headers_mut();
    let mut add = |name: &str, value: &str| -> Result<()> {
        headers.append(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
        Ok(())
    };
    add("spin-path-info", &route.path_info)?;
    add("spin-full-url", &full_url)?;
    add("spin-matched-route", &route.entry.based)?;
    add("spin-base-path", "/")?;
    add("spin-raw-component-route", &route.entry.raw)?;
    add("spin-component-route", route.entry.raw_or_prefix())?;
    add("spin-client-addr", &client.to_string())?;
    for (name, value) in &route.params {
        // Spin builds `SPIN_PATH_MATCH_<NAME>` and turns `_` into `-`: `:image_id` gives
        // `spin-path-match-image-id`.
        let header = format!("spin-path-match-{name}")
            .to_ascii_lowercase()
            .replace('_', "-");
        add(&header, value)?;
    }
    Ok(())
}
