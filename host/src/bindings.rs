//! Host bindings for the `fermyon:spin@2.0.0` interfaces in `wit/spin.wit`.
//!
//! Every import is async (SQLite and key-value calls run on blocking threads) and
//! trappable (an invalid resource handle traps the guest, as in Spin).

wasmtime::component::bindgen!({
    path: "wit",
    world: "host",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/key-value.store": crate::state::key_value::StoreHandle,
        "fermyon:spin/sqlite.connection": crate::state::sqlite::ConnectionHandle,
    },
});

pub use fermyon::spin::{key_value, sqlite, variables};
