//! The thin layer between Spin and `glance-core`.
//!
//! [`serve`] turns a Spin (`wasi:http`) request into a core [`ApiRequest`] with a
//! streaming body, runs a core service with the Spin implementations of its
//! ports ([`SpinDb`] over `fermyon:spin/sqlite`, [`SpinVars`] over Spin
//! variables), and streams the [`ApiResponse`] back. Nothing here knows about
//! images; nothing in the core knows about Spin.

mod body;
mod outbound;
mod ports;

use std::net::SocketAddr;
use std::rc::Rc;

use glance_core::api::{ApiRequest, ApiResponse, Body};
use glance_core::ports::Ports;
use http::{HeaderMap, HeaderName, HeaderValue};
use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingResponse, ResponseOutparam};

pub use outbound::SpinHttp;
pub use ports::{SpinDb, SpinKvOpener, SpinLog, SpinPubSub, SpinVars};

/// A core service: one of `glance_core::api::{images, members, discovery}::handle`.
pub type Service = fn(&Ports, ApiRequest) -> ApiResponse;

/// Serves one Spin HTTP request with `service`.
pub fn serve(req: IncomingRequest, out: ResponseOutparam, service: Service) {
    let headers = header_map(&req);
    let base_url = host_header(&headers, "spin-full-url")
        .map(origin)
        .unwrap_or_default();
    let client_ip = host_header(&headers, "spin-client-addr")
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.ip());
    let method = http_method(&req.method());
    let target = req.path_with_query().unwrap_or_else(|| "/".to_string());
    let body = body::RequestBody::new(&req);
    let db = SpinDb::default();
    let ports = Ports {
        db: &db,
        vars: &SpinVars,
        kv: &SpinKvOpener,
        http: Rc::new(SpinHttp),
        log: &SpinLog,
        pubsub: &SpinPubSub,
    };
    let api_req = ApiRequest::new(
        method,
        &target,
        headers,
        base_url,
        client_ip,
        Box::new(body),
    );
    let mut resp = service(&ports, api_req);
    let deferred = resp.deferred.take();
    send(out, resp);
    // The response is complete; the host keeps this instance until we return.
    if let Some(work) = deferred {
        work(&ports);
    }
}

/// A header Spin sets: Spin keeps a client's header of the same name and
/// appends its own after it, so only the last value is the host's (a client
/// sending `spin-client-addr: 127.0.0.1:1` must not look local).
fn host_header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(name)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
}

/// `scheme://authority` of a full URL.
fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            format!("{scheme}://{authority}")
        }
        None => String::new(),
    }
}

fn header_map(req: &IncomingRequest) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in req.headers().entries() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            map.append(n, v);
        }
    }
    map
}

fn http_method(m: &Method) -> http::Method {
    match m {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Patch => http::Method::PATCH,
        Method::Options => http::Method::OPTIONS,
        Method::Connect => http::Method::CONNECT,
        Method::Trace => http::Method::TRACE,
        Method::Other(o) => http::Method::from_bytes(o.as_bytes()).unwrap_or(http::Method::GET),
    }
}

/// Writes the response: headers, then the body as it is produced.
fn send(out: ResponseOutparam, resp: ApiResponse) {
    let mut entries: Vec<(String, Vec<u8>)> = resp
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes()))
        .collect();
    if let Body::Bytes(bytes) = &resp.body {
        if !entries.iter().any(|(k, _)| k == "content-length") {
            entries.push((
                "content-length".into(),
                bytes.len().to_string().into_bytes(),
            ));
        }
    }
    let fields = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(fields);
    // Fails only for codes outside 100..=599, which StatusCode cannot hold.
    let _ = response.set_status_code(resp.status.as_u16());
    body::write_body(out, response, resp.body);
}
