//! The publish port: a message on a channel of a message server (Spin's
//! outbound Redis, `fermyon:spin/redis`), for notifications.

use super::OutboundError;

/// Publishes messages.
pub trait PubSub {
    /// Publishes `payload` on `channel` of the server at `address`
    /// (`redis://host:port`).
    fn publish(&self, address: &str, channel: &str, payload: &[u8]) -> Result<(), OutboundError>;
}
