//! What the core needs from its host, as small traits: SQL ([`Database`]),
//! key-value stores ([`KeyValue`]), outbound HTTP ([`HttpClient`]) and
//! configuration variables ([`Variables`]). A Spin component implements them
//! over Spin's interfaces; native tests use the in-memory fakes.

mod kv;
#[cfg(test)]
pub(crate) mod memory;
pub mod outbound;
mod sql;
mod vars;

use std::rc::Rc;

pub use kv::{KeyValue, KeyValueOpener};
pub use outbound::{HttpClient, OutRequest, OutResponse, OutboundError};
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
}

/// Work that continues after the response has been sent (an import).
pub type Deferred = Box<dyn FnOnce(&Ports)>;
