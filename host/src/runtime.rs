//! The Wasm side: engine configuration, compilation (with an on-disk cache of compiled
//! components), the linker with every host interface, and per-request instances.
//!
//! As in Spin (spinframework/spin crates/core/src/lib.rs), the engine uses Wasmtime's
//! pooling instance allocator (falling back to on-demand allocation where the address
//! space cannot be reserved) and epoch interruption; here the epoch ticks every 10 ms and
//! a running guest yields to the async runtime at each tick, so a busy guest cannot starve
//! other requests. Each request gets a fresh `Store` instantiated from a `ProxyPre` made
//! once at start-up.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings;
use crate::outbound::{AllowedHosts, OutboundHooks};
use crate::redis::RedisInstance;
use crate::state::key_value::{KeyValueApp, KeyValueInstance};
use crate::state::sqlite::{SqliteApp, SqliteInstance};
use crate::variables::{ComponentVariables, VariablesInstance};

const MB: usize = 1 << 20;
const GB: u64 = 1 << 30;

/// The data of one instance's `Store`.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    kv: KeyValueInstance,
    redis: RedisInstance,
    sqlite: SqliteInstance,
    variables: VariablesInstance,
    limits: StoreLimits,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Builds the engine: pooling allocator when available, epoch interruption on.
pub fn engine() -> Result<Engine> {
    let mut config = base_config();
    let mut pooling = PoolingAllocationConfig::default();
    let max_instances = env_or("GLANCE_HOST_MAX_INSTANCES", 1000u32);
    pooling
        .total_component_instances(max_instances)
        .total_memories(max_instances)
        .total_tables(2 * max_instances)
        .total_stacks(max_instances)
        .total_core_instances(4 * max_instances)
        .table_elements(100_000)
        .max_component_instance_size(10 * MB)
        .max_core_instance_size(10 * MB)
        .max_core_instances_per_component(200)
        .max_tables_per_component(64)
        .max_memories_per_component(32)
        .max_tables_per_module(2)
        .max_memories_per_module(2)
        .max_memory_size((4 * GB) as usize)
        .linear_memory_keep_resident(2 * MB)
        .table_keep_resident(MB / 2);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    match Engine::new(&config) {
        Ok(e) => Ok(e),
        Err(pooling_err) => {
            // Too little address space for the pool (e.g. a restrictive ulimit -v).
            let config = base_config();
            Engine::new(&config).map_err(|e| {
                anyhow!(
                    "could not create the Wasm engine: {e:#} (pooling allocator: {pooling_err:#})"
                )
            })
        }
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // `GLANCE_HOST_PERFMAP=1` writes /tmp/perf-<pid>.map so `perf report`
    // can name the guests' compiled functions.
    if std::env::var_os("GLANCE_HOST_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Advances the engine's epoch every 10 ms so guests yield regularly.
pub fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("glance-host-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(10));
            match weak.upgrade() {
                Some(e) => e.increment_epoch(),
                None => break,
            }
        })
        .ok();
}

/// Where compiled components are cached: `$GLANCE_HOST_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/glance-host`, else `~/.cache/glance-host`. `None` disables caching.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("GLANCE_HOST_CACHE_DIR") {
        return (!d.is_empty()).then(|| PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("glance-host"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("glance-host"))
}

/// Compiles a component, or loads its compiled form from `cache_dir`.
///
/// Cache entries are keyed by the SHA-256 of the Wasm bytes and the engine's compatibility
/// hash (target, compiler settings, Wasmtime version), and written atomically (temporary file + rename).
pub fn load_component(engine: &Engine, path: &Path, cache_dir: Option<&Path>) -> Result<Component> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("failed to read Wasm source \"{}\"", path.display()))?;
    let Some(cache_dir) = cache_dir else {
        return Component::new(engine, &bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to compile \"{}\"", path.display()));
    };
    let mut engine_hasher = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hasher);
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    // The engine hash covers the target, compiler flags and the Wasmtime version.
    let key = format!("{hex}-{:016x}", engine_hasher.finish());
    let cached = cache_dir.join(format!("{key}.cwasm"));
    if cached.exists() {
        // SAFETY: the file was written by `Component::serialize` of this program into the
        // cache directory; `deserialize_file` still checks it against this engine.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok(c);
        }
    }
    let component = Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("failed to compile \"{}\"", path.display()))?;
    if let Ok(serialized) = component.serialize() {
        let _ = std::fs::create_dir_all(cache_dir);
        let tmp = cache_dir.join(format!("{key}.{}.tmp", std::process::id()));
        if std::fs::write(&tmp, serialized).is_ok() && std::fs::rename(&tmp, &cached).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(component)
}

/// Creates the linker with WASI 0.2, wasi:http and the Spin interfaces.
pub fn linker(engine: &Engine) -> Result<Linker<InstanceState>> {
    let mut linker: Linker<InstanceState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::key_value::add_to_linker::<_, HasSelf<KeyValueInstance>>(&mut linker, |s| &mut s.kv)?;
    bindings::wasi_kv_store::add_to_linker::<_, HasSelf<KeyValueInstance>>(&mut linker, |s| {
        &mut s.kv
    })?;
    bindings::wasi_kv_batch::add_to_linker::<_, HasSelf<KeyValueInstance>>(&mut linker, |s| {
        &mut s.kv
    })?;
    bindings::redis::add_to_linker::<_, HasSelf<RedisInstance>>(&mut linker, |s| &mut s.redis)?;
    bindings::sqlite::add_to_linker::<_, HasSelf<SqliteInstance>>(&mut linker, |s| &mut s.sqlite)?;
    bindings::variables::add_to_linker::<_, HasSelf<VariablesInstance>>(&mut linker, |s| {
        &mut s.variables
    })?;
    Ok(linker)
}

/// State shared by every instance of the application.
pub struct AppState {
    /// Key-value stores by label.
    pub key_value: Arc<KeyValueApp>,
    /// SQLite databases by label.
    pub sqlite: Arc<SqliteApp>,
    /// `ip:port` of the listener (for requests to `self`).
    pub self_authority: Arc<str>,
    /// `max_instance_memory` from the runtime config.
    pub max_instance_memory: Option<usize>,
}

/// A component ready to serve: pre-instantiated, with its policy and configuration.
pub struct PreparedComponent {
    /// Component id.
    pub id: Arc<str>,
    pre: ProxyPre<InstanceState>,
    environment: Vec<(String, String)>,
    allowed_hosts: Arc<AllowedHosts>,
    kv_allowed: Arc<HashSet<String>>,
    sqlite_allowed: Arc<HashSet<String>>,
    variables: Arc<ComponentVariables>,
}

/// Everything needed to prepare one component.
pub struct ComponentSpec<'a> {
    /// Component id.
    pub id: &'a str,
    /// The compiled component.
    pub component: &'a Component,
    /// Environment variables it sees.
    pub environment: Vec<(String, String)>,
    /// Outbound HTTP policy.
    pub allowed_hosts: AllowedHosts,
    /// Granted key-value labels.
    pub key_value_stores: &'a [String],
    /// Granted SQLite labels.
    pub sqlite_databases: &'a [String],
    /// Resolved variables.
    pub variables: ComponentVariables,
}

impl PreparedComponent {
    /// Links and pre-instantiates a component; fails if it imports anything the host
    /// does not provide or does not export `wasi:http/incoming-handler@0.2.x`.
    pub fn new(linker: &Linker<InstanceState>, spec: ComponentSpec<'_>) -> Result<Self> {
        let id = spec.id;
        let instance_pre = linker.instantiate_pre(spec.component).map_err(|e| {
            anyhow!(
                "component `{id}` needs something glance-host does not provide: {e:#}\n(glance-host provides WASI 0.2 (cli, clocks, random, io, filesystem without preopens, sockets), wasi:http/types and outgoing-handler, fermyon:spin/key-value, sqlite, variables and redis @2.0.0, and wasi:keyvalue/store and batch @0.2.0-draft2)"
            )
        })?;
        let pre = ProxyPre::new(instance_pre).map_err(|e| {
            anyhow!("component `{id}` does not export wasi:http/incoming-handler@0.2.x (as spin-sdk's #[http_component] does): {e:#}")
        })?;
        Ok(Self {
            id: Arc::from(id),
            pre,
            environment: spec.environment,
            allowed_hosts: Arc::new(spec.allowed_hosts),
            kv_allowed: Arc::new(spec.key_value_stores.iter().cloned().collect()),
            sqlite_allowed: Arc::new(spec.sqlite_databases.iter().cloned().collect()),
            variables: Arc::new(spec.variables),
        })
    }

    /// A fresh store and instance for one request.
    pub async fn instantiate(&self, app: &AppState) -> Result<(Store<InstanceState>, Proxy)> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout()
            .inherit_stderr()
            .envs(&self.environment);
        let mut limits = StoreLimitsBuilder::new();
        if let Some(max) = app.max_instance_memory {
            limits = limits.memory_size(max);
        }
        let state = InstanceState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks::new(
                self.allowed_hosts.clone(),
                self.id.clone(),
                app.self_authority.clone(),
            ),
            kv: KeyValueInstance::new(self.kv_allowed.clone(), app.key_value.clone()),
            redis: RedisInstance::new(self.allowed_hosts.clone()),
            sqlite: SqliteInstance::new(self.sqlite_allowed.clone(), app.sqlite.clone()),
            variables: VariablesInstance(self.variables.clone()),
            limits: limits.build(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let proxy = self.pre.instantiate_async(&mut store).await?;
        Ok((store, proxy))
    }
}
