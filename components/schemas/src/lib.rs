//! Spin HTTP component serving the Glance schemas API; all logic lives in `glance-core`.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    glance_spin_adapter::serve(req, out, glance_core::api::discovery::handle);
}
