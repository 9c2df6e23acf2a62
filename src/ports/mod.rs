//! What the core needs from its host, as small traits: SQL ([`Database`]),
//! key-value stores ([`KeyValue`]), outbound HTTP ([`HttpClient`]) and
//! configuration variables ([`Variables`]) and a log ([`Log`]). A Spin component implements them
//! over Spin's interfaces; native tests use the in-memory fakes.

mod kv;
mod log;
#[cfg(test)]
pub(crate) mod memory;
pub mod outbound;
mod pubsub;
mod sql;
mod vars;

use std::rc::Rc;

pub use kv::{KeyValue, KeyValueOpener};
pub use log::{Level, Log};
pub use outbound::{HttpClient, OutRequest, OutResponse, OutboundError};
pub use pubsub::PubSub;
pub use sql::{Database, Rows, SqlValue, StoreError};
pub use vars::Variables;

/// What the host provides to the services. Each port is opened by the host
/// only when first used, so a request pays for what it touches.
pub struct Ports<'a> {
    /// Metadata database.
    pub db: &'a dyn Database,
    /// Configuration variables.
    pub vars: &'a dyn Variables,
    /// Key-value stores (image data, token cache).
    pub kv: &'a dyn KeyValueOpener,
    /// Outbound HTTP (S3, web-download, http locations, Keystone).
    pub http: Rc<dyn HttpClient>,
    /// Where log lines go.
    pub log: &'a dyn Log,
    /// Message publishing (notifications).
    pub pubsub: &'a dyn PubSub,
}

impl Ports<'_> {
    /// Logs an internal error that is not answered to anyone (deferred work,
    /// clean-up after a response): `context` says what was being done.
    pub fn log_error(&self, context: &str, err: impl std::fmt::Display) {
        self.log.line(Level::Error, &format!("{context}: {err}"));
    }
}

/// Work that continues after the response has been sent (an import).
pub type Deferred = Box<dyn FnOnce(&Ports)>;
