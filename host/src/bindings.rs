//! Host bindings for the interfaces in `wit/`: `fermyon:spin@2.0.0` (key-value, sqlite,
//! variables, redis) and `wasi:keyvalue@0.2.0-draft2` (store, batch).
//!
//! Every import is async (SQLite, key-value and Redis calls do I/O) and trappable (an
//! invalid resource handle of the Spin interfaces traps the guest, as in Spin).

wasmtime::component::bindgen!({
    path: "wit",
    world: "host",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/key-value.store": crate::state::key_value::StoreHandle,
        "fermyon:spin/sqlite.connection": crate::state::sqlite::ConnectionHandle,
        "fermyon:spin/redis.connection": crate::redis::RedisConnection,
        "wasi:keyvalue/store.bucket": crate::state::key_value::BucketHandle,
    },
});

pub use fermyon::spin::{key_value, redis, sqlite, variables};
pub use wasi::keyvalue::{batch as wasi_kv_batch, store as wasi_kv_store};
