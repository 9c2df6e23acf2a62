//! `glance-host`: runs a Spin application's HTTP components locally, the way `spin up`
//! (Spin 4.x) does, for machines where Spin itself is not installed.
//!
//! ```text
//! glance-host up [--from spin.toml] [--listen 127.0.0.1:3000] [--state-dir DIR]
//!                [--runtime-config-file FILE] [--build] [--cache-dir DIR | --disable-cache]
//! glance-host build [--from spin.toml]
//! ```
//!
//! Modules: [`manifest`] (spin.toml), [`template`] (variable templates), [`variables`],
//! [`runtime_config`], [`router`], [`outbound`] (allowed hosts), [`state`] (key-value and
//! SQLite), [`runtime`] (Wasmtime), [`server`] (HTTP trigger), [`builder`] (build commands),
//! [`malloc`] (allocator settings).

mod bindings;
mod builder;
mod error_bodies;
mod malloc;
mod manifest;
mod outbound;
mod redis;
mod router;
mod runtime;
mod runtime_config;
mod server;
mod state;
mod template;
mod variables;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context as _, Result};

use crate::manifest::App;
use crate::outbound::AllowedHosts;
use crate::router::Router;
use crate::runtime::{AppState, ComponentSpec, PreparedComponent};
use crate::runtime_config::RuntimeConfig;
use crate::server::{ConnSettings, ConnTimeouts, Server};
use crate::state::key_value::KeyValueApp;
use crate::state::sqlite::SqliteApp;
use crate::variables::{AppVariables, ComponentVariables, EnvProvider};

const USAGE: &str = "\
glance-host: run a Spin application's HTTP components locally (like `spin up`)

USAGE:
    glance-host up [OPTIONS]      Start the application
    glance-host build [--from P]  Run the components' build commands

OPTIONS (up):
    -f, --from <PATH>                  Manifest file or its directory [default: spin.toml]
        --listen <ADDR>                Address to listen on [default: 127.0.0.1:3000]; port 0 picks one
        --state-dir <DIR>              State directory [default: .spin beside the manifest]; '' = in-memory
        --runtime-config-file <FILE>   Runtime config (also $RUNTIME_CONFIG_FILE) [default:
                                       runtime-config.toml beside the manifest, if present]
        --build                        Run the build commands first
        --cache-dir <DIR>              Compiled-component cache [default: ~/.cache/glance-host]
        --disable-cache                Compile without the cache
        --http1-max-buf-size <BYTES>   HTTP/1 buffer limit, at least 8192 (also
                                       $SPIN_HTTP1_MAX_BUF_SIZE, as Spin) [default: hyper's]
    -h, --help                         Print this help

ENVIRONMENT:
    SPIN_VARIABLE_<NAME>   Value of application variable <name>
    GLANCE_HOST_LOG        If set, log each request on stderr
    GLANCE_HOST_HEADER_TIMEOUT_MS  A request head must arrive within this (default
                           30000; 0 = none): also the wait for the next request
    GLANCE_HOST_IDLE_TIMEOUT_MS    Close connections with nothing in flight after this
                           (default 60000; 0 = never)
";

/// Options of `glance-host up`.
#[derive(Debug, Default)]
struct UpOptions {
    from: Option<PathBuf>,
    listen: Option<String>,
    state_dir: Option<String>,
    runtime_config_file: Option<PathBuf>,
    build: bool,
    cache_dir: Option<PathBuf>,
    disable_cache: bool,
    http1_max_buf_size: Option<String>,
}

enum Command {
    Up(UpOptions),
    Build(Option<PathBuf>),
    Help,
}

fn parse_args(args: &[String]) -> Result<Command> {
    let Some(cmd) = args.first() else {
        return Ok(Command::Help);
    };
    let mut opts = UpOptions::default();
    let mut it = args[1..].iter();
    let value = |it: &mut std::slice::Iter<'_, String>, flag: &str| -> Result<String> {
        it.next()
            .cloned()
            .ok_or_else(|| anyhow!("{flag} needs a value"))
    };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let take = |it: &mut std::slice::Iter<'_, String>| match &inline {
            Some(v) => Ok(v.clone()),
            None => value(it, flag),
        };
        match flag {
            "-f" | "--from" | "--file" => opts.from = Some(take(&mut it)?.into()),
            "--listen" => opts.listen = Some(take(&mut it)?),
            "--state-dir" => opts.state_dir = Some(take(&mut it)?),
            "--runtime-config-file" => opts.runtime_config_file = Some(take(&mut it)?.into()),
            "--cache-dir" => opts.cache_dir = Some(take(&mut it)?.into()),
            "--disable-cache" => opts.disable_cache = true,
            "--http1-max-buf-size" => opts.http1_max_buf_size = Some(take(&mut it)?),
            "--build" => opts.build = true,
            "-h" | "--help" => return Ok(Command::Help),
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    match cmd.as_str() {
        "up" => Ok(Command::Up(opts)),
        "build" => {
            if opts.listen.is_some()
                || opts.state_dir.is_some()
                || opts.runtime_config_file.is_some()
                || opts.build
            {
                bail!("`build` takes only --from");
            }
            Ok(Command::Build(opts.from))
        }
        "-h" | "--help" | "help" => Ok(Command::Help),
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

/// `--http1-max-buf-size`, else `$SPIN_HTTP1_MAX_BUF_SIZE` (Spin's flag and variable).
/// hyper's minimum is 8192 (Spin takes a smaller value and its connections then fail).
fn http1_max_buf_size(flag: Option<&str>) -> Result<Option<usize>> {
    let from_env = std::env::var("SPIN_HTTP1_MAX_BUF_SIZE").ok();
    let Some(v) = flag.map(str::to_string).or(from_env) else {
        return Ok(None);
    };
    let n: usize = v
        .trim()
        .parse()
        .with_context(|| format!("invalid HTTP/1 buffer size {v:?}"))?;
    ensure!(
        n >= 8192,
        "the HTTP/1 buffer size must be at least 8192 bytes (got {n})"
    );
    Ok(Some(n))
}

/// `--from` may name the manifest or the directory holding `spin.toml`.
fn manifest_path(from: Option<&Path>) -> PathBuf {
    match from {
        None => PathBuf::from("spin.toml"),
        Some(p) if p.is_dir() => p.join("spin.toml"),
        Some(p) => p.to_path_buf(),
    }
}

fn main() {
    malloc::tune_for_large_buffers();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse_args(&args).and_then(|cmd| match cmd {
        Command::Help => {
            print!("{USAGE}");
            Ok(())
        }
        Command::Build(from) => {
            let app = App::load(&manifest_path(from.as_deref()))?;
            builder::build(&app)
        }
        Command::Up(opts) => up(opts),
    });
    if let Err(e) = result {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn up(opts: UpOptions) -> Result<()> {
    let started = Instant::now();
    let app = App::load(&manifest_path(opts.from.as_deref()))?;
    if opts.build {
        builder::build(&app)?;
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;

    // Runtime config: flag, then $RUNTIME_CONFIG_FILE (as Spin), then runtime-config.toml
    // beside the manifest (a glance-host convenience).
    let rc_path = opts
        .runtime_config_file
        .clone()
        .or_else(|| std::env::var_os("RUNTIME_CONFIG_FILE").map(PathBuf::from))
        .or_else(|| {
            let p = app.dir.join("runtime-config.toml");
            p.is_file().then_some(p)
        });
    let runtime_config = match &rc_path {
        Some(p) => RuntimeConfig::load(p, &cwd)?,
        None => RuntimeConfig::default(),
    };
    if let (Some(summary), Some(p)) = (runtime_config.summary(), &rc_path) {
        eprintln!(
            "Using runtime config {summary} from {:?}",
            p.display().to_string()
        );
    }

    let state_dir: Option<PathBuf> = match opts
        .state_dir
        .as_deref()
        .or(runtime_config.state_dir.as_deref())
    {
        Some("") => None,
        Some(d) => Some(std::path::absolute(d)?),
        None => Some(app.dir.join(".spin")),
    };

    let app_vars = AppVariables::resolve(&app, &EnvProvider::new(&cwd))?;
    let kv_stores = runtime_config.resolved_key_value_stores(state_dir.as_deref());
    let sqlite_dbs = runtime_config.resolved_sqlite_databases(state_dir.as_deref());
    check_grants(&app, &kv_stores, &sqlite_dbs)?;

    let engine = runtime::engine()?;
    runtime::start_epoch_ticker(&engine);
    let linker = runtime::linker(&engine)?;
    let cache_dir = if opts.disable_cache {
        None
    } else {
        opts.cache_dir.clone().or_else(runtime::default_cache_dir)
    };

    // Only components some trigger uses are compiled; Spin loads the rest too, but
    // nothing can call them.
    let used: BTreeSet<&str> = app.triggers.iter().map(|t| t.component.as_str()).collect();
    let mut component_index = BTreeMap::new();
    let mut specs = Vec::new();
    for id in &used {
        let c = &app.components[*id];
        let compiled = runtime::load_component(&engine, &c.source, cache_dir.as_deref())
            .with_context(|| format!("Failed to load component `{id}`"))?;
        let allowed_hosts = AllowedHosts::parse(&c.allowed_outbound_hosts, &app_vars)
            .with_context(|| format!("component `{id}`: invalid allowed_outbound_hosts"))?;
        let variables = ComponentVariables::resolve(c, &app_vars)?;
        check_glance_settings(id, &variables)?;
        component_index.insert(*id, specs.len());
        specs.push((c, compiled, allowed_hosts, variables));
    }

    let key_value = Arc::new(KeyValueApp::new(kv_stores));
    let sqlite = Arc::new(SqliteApp::new(sqlite_dbs));
    let granted_kv: BTreeSet<&str> = used
        .iter()
        .flat_map(|id| {
            app.components[*id]
                .key_value_stores
                .iter()
                .map(String::as_str)
        })
        .collect();
    let granted_db: BTreeSet<&str> = used
        .iter()
        .flat_map(|id| {
            app.components[*id]
                .sqlite_databases
                .iter()
                .map(String::as_str)
        })
        .collect();
    key_value.open(&granted_kv)?;
    sqlite.open(&granted_db)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("glance-host")
        .build()?;
    let app = &app;
    rt.block_on(async move {
        let listen = opts.listen.as_deref().unwrap_or("127.0.0.1:3000");
        let addr: SocketAddr = tokio::net::lookup_host(listen)
            .await
            .with_context(|| format!("invalid --listen address {listen:?}"))?
            .next()
            .with_context(|| format!("--listen address {listen:?} resolves to nothing"))?;
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow!("{addr} is already in use.")
            } else {
                anyhow!("Unable to listen on {addr}: {e}")
            }
        })?;
        let local = listener.local_addr()?;

        let mut components = Vec::new();
        for (c, compiled, allowed_hosts, variables) in specs {
            let spec = ComponentSpec {
                id: &c.id,
                component: &compiled,
                environment: c
                    .environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                allowed_hosts,
                key_value_stores: &c.key_value_stores,
                sqlite_databases: &c.sqlite_databases,
                variables,
            };
            components.push(PreparedComponent::new(&linker, spec)?);
        }
        let router = Router::build(
            app.triggers
                .iter()
                .map(|t| (t.route.as_str(), component_index[t.component.as_str()])),
        )?;
        let log_requests = std::env::var_os("GLANCE_HOST_LOG").is_some();
        let conn = ConnSettings {
            http1_max_buf_size: http1_max_buf_size(opts.http1_max_buf_size.as_deref())?,
            timeouts: ConnTimeouts::from_env()?,
        };
        let server = Arc::new(Server {
            router,
            components,
            app: AppState {
                key_value,
                sqlite,
                self_authority: Arc::from(local.to_string()),
                max_instance_memory: runtime_config.max_instance_memory,
            },
            app_name: app.name.clone(),
            app_version: app.version.clone(),
            log_requests,
            conn,
        });

        let base_url = format!("http://{local}");
        println!("\nServing {base_url}");
        println!("Available Routes:");
        for route in server.router.routes() {
            let component = &server.components[route.component].id;
            println!("  {component}: {base_url}{}", route.display());
            let description = &app.components[&**component].description;
            if !description.is_empty() {
                println!("    {description}");
            }
        }
        if log_requests {
            eprintln!(
                "glance-host: ready in {:.0} ms",
                started.elapsed().as_secs_f64() * 1000.0
            );
        }

        tokio::select! {
            r = server.serve(listener) => r,
            _ = shutdown_signal() => Ok(()),
        }
    })
}

/// Ctrl-C or SIGTERM.
/// Reads a component's Glance settings the way the component will, so a
/// configuration the service cannot work with (an unknown store, a policy
/// override naming no rule) stops `up` with the message, instead of every
/// request answering 500. Real Spin cannot run component code at start-up:
/// there the first request's log line says the same (see host/README.md).
/// Variables a component does not declare take the service's defaults, so
/// other applications (the test probe) pass.
fn check_glance_settings(id: &str, variables: &ComponentVariables) -> Result<()> {
    let lookup = |name: &str| variables.get(name).ok();
    glance_core::settings::check(&lookup).map_err(|e| anyhow!("component `{id}`: {e}"))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Every granted label must be defined, as Spin checks at start-up.
fn check_grants(
    app: &App,
    kv: &BTreeMap<String, runtime_config::DbLocation>,
    dbs: &BTreeMap<String, runtime_config::SqliteDbConfig>,
) -> Result<()> {
    for c in app.components.values() {
        for label in &c.key_value_stores {
            if !kv.contains_key(label) {
                bail!(
                    "unknown key_value_stores label {label:?} for component {:?} (define it in the runtime config file: [key_value_store.{label}] type = \"spin\" path = \"...\")",
                    c.id
                );
            }
        }
    }
    let mut errors = Vec::new();
    for c in app.components.values() {
        for label in &c.sqlite_databases {
            if !dbs.contains_key(label) {
                errors.push(format!("- Component {} uses database '{label}'", c.id));
            }
        }
    }
    if !errors.is_empty() {
        bail!(
            "One or more components use SQLite databases which are not defined.\nCheck the spelling, or pass a runtime configuration file that defines these stores.\nDetails:\n{}",
            errors.join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_up_options() {
        let Command::Up(o) = parse_args(&args(
            "up --from x/spin.toml --listen=127.0.0.1:0 --state-dir /tmp/s --runtime-config-file rc.toml --build",
        ))
        .unwrap() else {
            panic!("not up")
        };
        assert_eq!(o.from.as_deref(), Some(Path::new("x/spin.toml")));
        assert_eq!(o.listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(o.state_dir.as_deref(), Some("/tmp/s"));
        assert_eq!(o.runtime_config_file.as_deref(), Some(Path::new("rc.toml")));
        assert!(o.build);
        assert!(matches!(
            parse_args(&args("build -f a.toml")).unwrap(),
            Command::Build(Some(_))
        ));
        assert!(parse_args(&args("up --bogus")).is_err());
        assert!(parse_args(&args("up --listen")).is_err());
        assert!(parse_args(&args("down")).is_err());
        assert!(matches!(parse_args(&[]).unwrap(), Command::Help));
    }
}
