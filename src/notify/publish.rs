//! Sending events: oslo.messaging's envelope to a Redis channel, a
//! CloudEvents document to a webhook. Runs in deferred work; failures are
//! logged, never answered.

use serde_json::{json, Value};

use super::Event;
use crate::ports::outbound::send_idempotent;
use crate::ports::{OutRequest, Ports};
use crate::settings::{self, Var};

/// The publisher id Glance's notifier uses.
const PUBLISHER: &str = "image.localhost";

/// oslo.messaging's notification envelope.
fn envelope(e: &Event) -> Value {
    json!({
        "message_id": uuid::Uuid::new_v4().to_string(),
        "publisher_id": PUBLISHER,
        "event_type": e.event_type,
        "priority": "INFO",
        "payload": e.payload,
        "timestamp": e.at.to_string(),
    })
}

/// A CloudEvents 1.0 JSON document.
fn cloud_event(e: &Event) -> Value {
    json!({
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4().to_string(),
        "source": "glance-edge",
        "type": e.event_type,
        "time": e.at.to_string(),
        "datacontenttype": "application/json",
        "data": e.payload,
    })
}

/// Publishes `events` in order to whatever the operator configured.
pub(crate) fn publish(ports: &Ports, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    let drivers = settings::list(ports.vars, Var::NotificationDriver);
    let to_redis = drivers.iter().any(|d| d == "redis");
    let to_webhook = drivers.iter().any(|d| d == "webhook");
    if !to_redis && !to_webhook {
        return;
    }
    let redis = settings::value(ports.vars, Var::NotificationRedisUrl);
    let channel = settings::value(ports.vars, Var::NotificationRedisChannel);
    let webhook = settings::value(ports.vars, Var::NotificationWebhookUrl);
    for e in events {
        if to_redis {
            let body = envelope(e).to_string();
            if let Err(err) = ports.pubsub.publish(&redis, &channel, body.as_bytes()) {
                ports.log_error(&format!("publishing {} to Redis", e.event_type), err);
            }
        }
        if to_webhook {
            let sent = send_idempotent(
                ports.http.as_ref(),
                OutRequest {
                    method: http::Method::POST,
                    url: webhook.clone(),
                    headers: vec![("content-type".into(), "application/cloudevents+json".into())],
                    body: cloud_event(e).to_string().into_bytes(),
                },
            );
            match sent {
                Ok(resp) if (200..300).contains(&resp.status) => {}
                Ok(resp) => ports.log_error(
                    &format!("posting {} to the webhook", e.event_type),
                    format!("HTTP {}", resp.status),
                ),
                Err(err) => {
                    ports.log_error(&format!("posting {} to the webhook", e.event_type), err)
                }
            }
        }
    }
}
