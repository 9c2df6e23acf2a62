//! The HTTP trigger: accepts connections, routes requests, runs a fresh component instance
//! per request and streams bodies both ways.
//!
//! Mirrors spinframework/spin crates/trigger-http/src/server.rs, headers.rs and wasi.rs:
//! - `/.well-known/spin/health` answers `OK` and `/.well-known/spin/info` the app's name
//!   and version; other `/.well-known/spin/...` paths and unrouted paths are 404 with an
//!   empty body;
//! - the request the component sees has an absolute URI (`http://<Host header><path>`),
//!   no `Connection` header, and the `spin-*` headers: `spin-full-url`, `spin-path-info`,
//!   `spin-matched-route`, `spin-base-path` (`/`), `spin-raw-component-route`,
//!   `spin-component-route`, `spin-client-addr` and `spin-path-match-<param>` for each
//!   `:param` (lower-cased, `_` turned into `-`) (glance-host replaces client-sent headers of those names, where Spin keeps
//!   them beside its own);
//! - a guest that traps, or returns without a response, gets a 500 with an empty body
//!   (logged on stderr); one that traps after sending the response head ends the body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context as _, Result};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
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
    /// Accepts connections forever (HTTP/1.1 with keep-alive).
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
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.handle(req, client).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    if server_log_enabled() {
                        eprintln!("glance-host: connection from {client}: {e}");
                    }
                }
            });
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>, client: SocketAddr) -> Response<Body> {
        let started = self.log_requests.then(Instant::now);
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let (response, component) = self.dispatch(req, client).await;
        if let Some(t) = started {
            eprintln!(
                "{method} {path} -> {} {} in {:.3} ms",
                component.unwrap_or("-"),
                response.status().as_u16(),
                t.elapsed().as_secs_f64() * 1000.0
            );
        }
        response
    }

    async fn dispatch(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
    ) -> (Response<Body>, Option<&str>) {
        let path = req.uri().path().to_string();
        if let Some(well_known) = path.strip_prefix(WELL_KNOWN_PREFIX) {
            return (self.well_known(well_known), None);
        }
        let Some(route) = self.router.route(&path) else {
            return (status_only(StatusCode::NOT_FOUND), None);
        };
        let component = &self.components[route.entry.component];
        if let Err(e) = prepare_request(&mut req, &route, client) {
            eprintln!("glance-host: bad request for {path}: {e:#}");
            return (status_only(StatusCode::BAD_REQUEST), Some(&component.id));
        }
        match self.run(component, req).await {
            Ok(resp) => (resp, Some(&component.id)),
            Err(e) => {
                eprintln!(
                    "glance-host: error processing request for component `{}`: {e:#}",
                    component.id
                );
                (
                    status_only(StatusCode::INTERNAL_SERVER_ERROR),
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
                // The guest set an error instead of a response.
                let _ = task.await;
                Err(anyhow!(
                    "guest returned an error instead of a response: {code:?}"
                ))
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

/// Gives the request an absolute URI and the headers Spin adds.
fn prepare_request(
    req: &mut Request<Incoming>,
    route: &RouteMatch<'_>,
    client: SocketAddr,
) -> Result<()> {
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
    let full_url = format!("http://{authority}{path_and_query}");
    *req.uri_mut() = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path_and_query)
        .build()?;

    let headers = req.headers_mut();
    headers.remove(http::header::CONNECTION);
    let mut set = |name: &str, value: &str| -> Result<()> {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
        Ok(())
    };
    set("spin-path-info", &route.path_info)?;
    set("spin-full-url", &full_url)?;
    set("spin-matched-route", &route.entry.based)?;
    set("spin-base-path", "/")?;
    set("spin-raw-component-route", &route.entry.raw)?;
    set("spin-component-route", route.entry.raw_or_prefix())?;
    set("spin-client-addr", &client.to_string())?;
    for (name, value) in &route.params {
        // Spin builds `SPIN_PATH_MATCH_<NAME>` and turns `_` into `-`: `:image_id` gives
        // `spin-path-match-image-id`.
        let header = format!("spin-path-match-{name}")
            .to_ascii_lowercase()
            .replace('_', "-");
        set(&header, value)?;
    }
    Ok(())
}
