//! The HTTP surface of the service, independent of any host.
//!
//! A host adapter builds an [`ApiRequest`], calls the service of the component
//! ([`images::handle`], [`members::handle`], [`discovery::handle`]) with the
//! [`Ports`] it provides, and writes the returned [`ApiResponse`]. Each service
//! has one route table ([`routes`]); every response leaves through [`serve`],
//! which adds the request id and writes the request's log line (and the
//! detail of any internal error, which the client never sees).

pub mod discovery;
#[cfg(test)]
mod harness;
pub mod images;
pub mod members;
pub mod metadefs;
mod negotiate;
mod request;
mod response;
mod routes;
pub(crate) mod v1;

use std::time::Instant;

pub use request::ApiRequest;
pub use response::{ApiResponse, Body};

use crate::error::ApiResult;
use crate::ports::{Level, Ports};

/// Negotiates the request's version once (see [`negotiate`]): the path
/// becomes its `/v2/...` form; false when the version asked for is not
/// served, to be answered with the version choices.
pub(crate) fn negotiated(ports: &Ports, req: &mut ApiRequest) -> bool {
    if req.negotiated {
        return true;
    }
    req.negotiated = true;
    let (multi_store, cache) = negotiate::deployment(ports.vars);
    match negotiate::negotiate(req, multi_store, cache) {
        negotiate::Negotiated::Unchanged => true,
        negotiate::Negotiated::Path(p) => {
            req.path = p;
            true
        }
        negotiate::Negotiated::Choices => false,
    }
}

/// Serves one request: `route` finds and runs the handler and names the
/// route pattern it took (for the log); the response gets the request id.
pub(crate) fn serve(
    ports: &Ports,
    mut req: ApiRequest,
    route: impl FnOnce(&mut ApiRequest) -> (&'static str, ApiResult<ApiResponse>),
) -> ApiResponse {
    let started = Instant::now();
    let (path, result) = route(&mut req);
    let resp = match result {
        Ok(resp) => resp,
        Err(err) => {
            if let Some(detail) = &err.detail {
                ports.log.line(
                    Level::Error,
                    &format!(
                        "{} {} {path}: {} ({detail})",
                        req.request_id(),
                        req.method,
                        err.status.as_u16()
                    ),
                );
            }
            ApiResponse::from(err)
        }
    };
    // A HEAD answer has headers only (errors too: the status says it).
    let resp = if req.method == http::Method::HEAD {
        resp.without_body()
    } else {
        resp
    };
    ports.log.line(
        Level::Info,
        &format!(
            "{} {} {path} {} {:.1}ms",
            req.request_id(),
            req.method,
            resp.status.as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        ),
    );
    resp.with_header("x-openstack-request-id", req.request_id().to_string())
}
