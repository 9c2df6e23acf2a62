//! Spin HTTP component serving the Glance images API; all logic lives in `glance-core`.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    glance_spin_adapter::serve(req, out, glance_core::api::images::handle);
}
