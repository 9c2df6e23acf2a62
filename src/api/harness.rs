//! A native test harness: the services driven directly, over in-memory
//! ports, without wasm, a host or sockets (Spin's `factors-test` in spirit).
//! Deferred work (an import) runs right after the response, as a host does.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::Value;

use crate::api::{ApiRequest, ApiResponse, Body};
use crate::ports::memory::{MemoryDb, MemoryKvOpener, MemoryLog, MemoryPubSub, NoHttp};
use crate::ports::{HttpClient, Ports, Variables};

/// A service entry point: `images::handle`, `members::handle`, `discovery::handle`.
pub(crate) type Service = fn(&Ports, ApiRequest) -> ApiResponse;

/// Variables set by a test; the rest take their defaults.
#[derive(Default)]
pub(crate) struct Vars(pub RefCell<BTreeMap<String, String>>);

impl Variables for Vars {
    fn get(&self, name: &str) -> Option<String> {
        self.0.borrow().get(name).cloned()
    }
}

/// One in-memory deployment: database, key-value stores, variables, log.
pub(crate) struct Harness {
    pub db: MemoryDb,
    pub kv: MemoryKvOpener,
    pub vars: Vars,
    pub http: Rc<dyn HttpClient>,
    pub log: MemoryLog,
    pub pubsub: MemoryPubSub,
}

/// A response with its body read.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts a Glance-shaped error with `status`; returns its message.
    #[track_caller]
    pub fn error(&self, status: u16) -> String {
        let doc = self.expect(status);
        assert_eq!(doc["error"]["code"], status, "{doc}");
        doc["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Harness {
    /// A fresh deployment on the default settings.
    pub fn new() -> Self {
        Harness {
            db: MemoryDb::new(),
            kv: MemoryKvOpener::default(),
            vars: Vars::default(),
            http: Rc::new(NoHttp::default()),
            log: MemoryLog::default(),
            pubsub: MemoryPubSub::default(),
        }
    }

    /// Sets a variable.
    pub fn set(&self, name: &str, value: &str) -> &Self {
        self.vars
            .0
            .borrow_mut()
            .insert(name.to_string(), value.to_string());
        self
    }

    /// Sends one request as the loopback noauth client, with `headers`
    /// (e.g. `X-Project-Id`), and reads the whole response; deferred work
    /// runs before this returns.
    pub fn call(
        &self,
        service: Service,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let ports = Ports {
            db: &self.db,
            vars: &self.vars,
            kv: &self.kv,
            http: self.http.clone(),
            log: &self.log,
            pubsub: &self.pubsub,
        };
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        if !body.is_empty() && !map.contains_key("content-length") {
            map.insert("content-length", body.len().into());
        }
        let req = ApiRequest::new(
            Method::from_bytes(method.as_bytes()).expect("method"),
            target,
            map,
            "http://127.0.0.1:3000",
            "127.0.0.1".parse().ok(),
            Box::new(std::io::Cursor::new(body.to_vec())),
        );
        let mut resp = service(&ports, req);
        let deferred = resp.deferred.take();
        let body = match resp.body {
            Body::Empty => Vec::new(),
            Body::Bytes(b) => b,
            Body::Stream(chunks) => chunks.flat_map(|c| c.expect("chunk")).collect(),
        };
        let reply = Reply {
            status: resp.status.as_u16(),
            headers: resp.headers,
            body,
        };
        if let Some(work) = deferred {
            work(&ports);
        }
        reply
    }

    /// A JSON request.
    pub fn json(
        &self,
        service: Service,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        doc: &Value,
    ) -> Reply {
        let mut h = headers.to_vec();
        h.push(("content-type", "application/json"));
        self.call(service, method, target, &h, doc.to_string().as_bytes())
    }
}

/// Headers naming a project and its roles (noauth).
pub(crate) fn as_project<'a>(project: &'a str, roles: &'a str) -> [(&'a str, &'a str); 2] {
    [("x-project-id", project), ("x-roles", roles)]
}
