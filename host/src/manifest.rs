//! Spin application manifest (`spin.toml`, manifest version 2): parsing and validation.
//!
//! Follows the schema of spinframework/spin crates/manifest/src/schema/v2.rs and the checks
//! of crates/loader/src/local.rs: component ids are kebab-case, variable names follow
//! Spin's variable-name rules, an application variable is either `required` or has a
//! `default`, and every `{{ name }}` in a component's variables must name an application
//! variable. glance-host additionally refuses what it cannot run (inline or remote
//! components, file mounts, component dependencies, non-HTTP triggers) instead of
//! ignoring it, and refuses duplicate routes (Spin warns and keeps the last one).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::Deserialize;

use crate::template::{validate_variable_name, Template};

/// A validated application.
#[derive(Debug)]
pub struct App {
    /// Absolute directory holding the manifest; relative paths resolve against it.
    pub dir: PathBuf,
    /// `[application] name`.
    pub name: String,
    /// `[application] version`, if set.
    pub version: Option<String>,
    /// Application variables by name.
    pub variables: BTreeMap<String, Variable>,
    /// HTTP triggers in manifest order.
    pub triggers: Vec<HttpTrigger>,
    /// Components by id.
    pub components: BTreeMap<String, Component>,
}

/// An application variable (`[variables] name = { default = "..." }`).
#[derive(Debug, Clone)]
pub struct Variable {
    /// The default value; `None` for a required variable.
    pub default: Option<String>,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// The route pattern as written.
    pub route: String,
    /// The id of the component that serves it.
    pub component: String,
}

/// A `[component.ID]` table.
#[derive(Debug, Clone)]
pub struct Component {
    /// Component id.
    pub id: String,
    /// Absolute path of the component's Wasm file.
    pub source: PathBuf,
    /// Free-text description (printed under the route at start-up, as Spin does).
    pub description: String,
    /// `allowed_outbound_hosts` entries, unresolved (they may contain templates).
    pub allowed_outbound_hosts: Vec<String>,
    /// Granted key-value store labels.
    pub key_value_stores: Vec<String>,
    /// Granted SQLite database labels.
    pub sqlite_databases: Vec<String>,
    /// Component variables: name → template over application variables.
    pub variables: BTreeMap<String, Template>,
    /// Environment variables the component sees.
    pub environment: BTreeMap<String, String>,
    /// The build step, if any.
    pub build: Option<BuildConfig>,
}

/// `[component.ID.build]`.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// Shell commands, run in order.
    pub commands: Vec<String>,
    /// Working directory relative to the manifest directory.
    pub workdir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default, rename = "trigger")]
    triggers: BTreeMap<String, Vec<toml::Table>>,
    #[serde(default, rename = "component")]
    components: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    authors: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    targets: Vec<toml::Value>,
    #[serde(default, rename = "trigger")]
    trigger_global_configs: BTreeMap<String, toml::Table>,
    #[serde(default)]
    #[allow(dead_code)]
    tool: BTreeMap<String, toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    secret: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    description: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    exclude_files: Vec<String>,
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default, alias = "key-value-stores")]
    key_value_stores: Vec<String>,
    #[serde(default, alias = "sqlite-databases")]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    targets: Option<Vec<toml::Value>>,
    #[serde(default)]
    build: Option<RawBuild>,
    #[serde(default)]
    #[allow(dead_code)]
    tool: BTreeMap<String, toml::Table>,
    #[serde(default)]
    #[allow(dead_code)]
    dependencies_inherit_configuration: Option<bool>,
    #[serde(default)]
    dependencies: toml::Table,
    #[serde(default)]
    #[allow(dead_code)]
    profile: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    command: RawCommands,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    watch: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCommands {
    Single(String),
    Multiple(Vec<String>),
}

impl App {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read manifest file \"{}\"", path.display()))?;
        let manifest_path = std::path::absolute(path)
            .with_context(|| format!("invalid manifest path \"{}\"", path.display()))?;
        let dir = manifest_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        Self::parse(&text, dir)
            .with_context(|| format!("Failed to load Spin app from \"{}\"", path.display()))
    }

    /// Parses and validates manifest text; `dir` anchors relative paths.
    pub fn parse(text: &str, dir: PathBuf) -> Result<Self> {
        let raw: RawManifest = toml::from_str(text).context("invalid manifest")?;

        let version_ok = match &raw.spin_manifest_version {
            toml::Value::Integer(2) => true,
            toml::Value::String(s) => s == "2",
            _ => false,
        };
        ensure!(
            version_ok,
            "invalid manifest version: {} (glance-host reads spin_manifest_version = 2)",
            raw.spin_manifest_version
        );
        for (trigger_type, config) in &raw.application.trigger_global_configs {
            ensure!(
                trigger_type == "http",
                "unsupported trigger type `{trigger_type}` in [application.trigger]"
            );
            for key in config.keys() {
                ensure!(
                    key == "base",
                    "unknown key `{key}` in [application.trigger.http]"
                );
            }
        }

        let mut variables = BTreeMap::new();
        for (name, v) in raw.variables {
            validate_variable_name(&name)
                .map_err(|reason| anyhow!("invalid variable name: {reason}"))?;
            ensure!(
                v.required ^ v.default.is_some(),
                "invalid variable definition for `{name}`: must be `required` OR have a `default`"
            );
            variables.insert(name, Variable { default: v.default });
        }

        let mut components = BTreeMap::new();
        for (id, c) in raw.components {
            let component = parse_component(&id, c, &dir, &variables)
                .with_context(|| format!("Failed to load component `{id}`"))?;
            components.insert(id, component);
        }

        let mut triggers = Vec::new();
        for (trigger_type, entries) in raw.triggers {
            ensure!(
                trigger_type == "http",
                "unsupported trigger type `{trigger_type}`: glance-host serves HTTP triggers only"
            );
            for entry in entries {
                if let Some(t) = parse_http_trigger(entry, &components)? {
                    triggers.push(t);
                }
            }
        }

        let mut seen_routes = HashSet::new();
        for t in &triggers {
            let normalized = crate::router::based_route(&t.route);
            ensure!(
                seen_routes.insert(normalized),
                "duplicate route `{}` (component `{}`): each route may appear once",
                t.route,
                t.component
            );
        }

        Ok(Self {
            dir,
            name: raw.application.name,
            version: raw.application.version,
            variables,
            triggers,
            components,
        })
    }
}

fn parse_http_trigger(
    mut entry: toml::Table,
    components: &BTreeMap<String, Component>,
) -> Result<Option<HttpTrigger>> {
    let id = match entry.remove("id") {
        Some(toml::Value::String(s)) => s,
        Some(other) => bail!("invalid `http` trigger config: `id` must be a string, got {other}"),
        None => String::new(),
    };
    let describe = || {
        if id.is_empty() {
            "`http` trigger".to_string()
        } else {
            format!("`http` trigger `{id}`")
        }
    };
    let route = match entry.remove("route") {
        Some(toml::Value::String(s)) => s,
        Some(toml::Value::Table(t)) => {
            // `route = { private = true }`: reachable only through service chaining, which
            // glance-host does not provide; such a trigger has no route, as in Spin.
            match t.get("private") {
                Some(toml::Value::Boolean(true)) if t.len() == 1 => return Ok(None),
                _ => bail!(
                    "invalid {}: route must be a string pattern or '{{ private = true }}'",
                    describe()
                ),
            }
        }
        Some(other) => bail!(
            "invalid {}: route must be a string, got {other}",
            describe()
        ),
        None => bail!("invalid {}: missing `route`", describe()),
    };
    let component = match entry.remove("component") {
        Some(toml::Value::String(s)) => s,
        Some(toml::Value::Table(_)) => bail!(
            "{} for route `{route}` defines its component inline; glance-host needs a component id referring to a [component.ID] table",
            describe()
        ),
        Some(other) => bail!(
            "invalid {} for route `{route}`: `component` must be a component id, got {other}",
            describe()
        ),
        None => bail!(
            "invalid {} for route `{route}`: missing `component` (static responses are not supported)",
            describe()
        ),
    };
    if let Some(executor) = entry.remove("executor") {
        let is_http = executor
            .as_table()
            .and_then(|t| t.get("type"))
            .and_then(|v| v.as_str())
            == Some("http");
        ensure!(
            is_http,
            "{} for route `{route}`: only the `http` (wasi:http) executor is supported, got {executor}",
            describe()
        );
    }
    if let Some(key) = entry.keys().next() {
        bail!(
            "invalid {} for route `{route}`: unknown key `{key}`",
            describe()
        );
    }
    ensure!(
        components.contains_key(&component),
        "trigger for route `{route}` references component `{component}`, which is not defined (no [component.{component}] table)"
    );
    Ok(Some(HttpTrigger { route, component }))
}

fn parse_component(
    id: &str,
    c: RawComponent,
    dir: &Path,
    app_variables: &BTreeMap<String, Variable>,
) -> Result<Component> {
    validate_id(id, '-').map_err(|reason| anyhow!("invalid ID `{id}`: {reason}"))?;

    let source = match c.source {
        toml::Value::String(s) => dir.join(s),
        other => bail!(
            "component source {other} is not a local file path; glance-host loads local Wasm files only"
        ),
    };
    ensure!(
        c.files.is_empty(),
        "`files` mounts are not supported by glance-host (components get no preopened directories)"
    );
    ensure!(
        c.allowed_http_hosts.is_empty(),
        "`allowed_http_hosts` is deprecated and not supported: use `allowed_outbound_hosts`"
    );
    ensure!(
        c.ai_models.is_empty(),
        "`ai_models` is not supported by glance-host"
    );
    ensure!(
        c.dependencies.is_empty(),
        "component `dependencies` are not supported by glance-host"
    );
    for label in c.key_value_stores.iter().chain(&c.sqlite_databases) {
        validate_label(label)
            .map_err(|reason| anyhow!("invalid store label `{label}`: {reason}"))?;
    }

    let mut variables = BTreeMap::new();
    for (name, value) in c.variables {
        validate_variable_name(&name)
            .map_err(|reason| anyhow!("invalid variable name: {reason}"))?;
        let template = Template::parse(&value)?;
        for var in template.variables() {
            ensure!(
                app_variables.contains_key(var),
                "invalid variable template: unknown variable {var:?} (in component variable `{name}` = {value:?}); define it under [variables]"
            );
        }
        variables.insert(name, template);
    }
    for host in &c.allowed_outbound_hosts {
        let template = Template::parse(host)
            .with_context(|| format!("`allowed_outbound_hosts` entry {host:?}"))?;
        for var in template.variables() {
            ensure!(
                app_variables.contains_key(var),
                "`allowed_outbound_hosts` entry {host:?} refers to unknown variable {var:?}"
            );
        }
    }

    let build = c.build.map(|b| BuildConfig {
        commands: match b.command {
            RawCommands::Single(s) => vec![s],
            RawCommands::Multiple(v) => v,
        },
        workdir: b.workdir,
    });

    Ok(Component {
        id: id.to_string(),
        source,
        description: c.description,
        allowed_outbound_hosts: c.allowed_outbound_hosts,
        key_value_stores: c.key_value_stores,
        sqlite_databases: c.sqlite_databases,
        variables,
        environment: c.environment,
        build,
    })
}

/// Spin's id rule (`spin_serde::Id`): `delim`-separated words of ASCII letters and digits,
/// each starting with a letter and either all lower-case or all upper-case.
fn validate_id(id: &str, delim: char) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty".into());
    }
    let wrong = if delim == '-' { '_' } else { '-' };
    if id.contains(wrong) {
        return Err(format!(
            "words must be separated with {delim:?}, not {wrong:?}"
        ));
    }
    for word in id.split(delim) {
        let mut chars = word.chars();
        let Some(first) = chars.next() else {
            return Err(format!("{delim:?}-separated words must not be empty"));
        };
        if !first.is_ascii_alphabetic() {
            return Err(format!(
                "{delim:?}-separated words must start with an ASCII letter; got {first:?}"
            ));
        }
        let upper = first.is_ascii_uppercase();
        for ch in chars {
            if ch.is_ascii_digit() {
                continue;
            }
            if !ch.is_ascii_alphanumeric() {
                return Err(format!(
                    "{delim:?}-separated words may only contain alphanumeric ASCII; got {ch:?}"
                ));
            }
            if ch.is_ascii_uppercase() != upper {
                return Err(format!(
                    "{delim:?}-separated words must be all lowercase or all UPPERCASE; got {word:?}"
                ));
            }
        }
    }
    Ok(())
}

/// Store and database labels may be kebab-case or snake_case (Spin's `kebab_or_snake_case`).
fn validate_label(label: &str) -> Result<(), String> {
    validate_id(label, '-').or_else(|_| validate_id(label, '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<App> {
        App::parse(text, PathBuf::from("/app"))
    }

    const BASE: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
version = "1.0.0"
[variables]
greeting = { default = "hello" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/a/..."
component = "one"
[[trigger.http]]
route = "/b/:id"
component = "one"
[component.one]
source = "target/one.wasm"
key_value_stores = ["default"]
sqlite_databases = ["default", "other_db"]
allowed_outbound_hosts = ["https://example.com", "{{ greeting }}"]
environment = { RUST_LOG = "info" }
[component.one.variables]
message = "{{ greeting }}, world"
literal = "just text"
[component.one.build]
command = "cargo build"
workdir = "sub"
watch = ["src/**/*.rs"]
"#;

    #[test]
    fn parses_a_valid_manifest() {
        let app = parse(BASE).unwrap();
        assert_eq!(app.name, "demo");
        assert_eq!(app.version.as_deref(), Some("1.0.0"));
        assert_eq!(app.triggers.len(), 2);
        assert_eq!(app.triggers[1].route, "/b/:id");
        let one = &app.components["one"];
        assert_eq!(one.source, PathBuf::from("/app/target/one.wasm"));
        assert_eq!(one.sqlite_databases, ["default", "other_db"]);
        assert_eq!(one.environment["RUST_LOG"], "info");
        assert_eq!(
            one.variables["message"].variables().collect::<Vec<_>>(),
            ["greeting"]
        );
        assert!(one.variables["literal"].is_literal());
        let build = one.build.as_ref().unwrap();
        assert_eq!(build.commands, ["cargo build"]);
        assert_eq!(build.workdir.as_deref(), Some("sub"));
        assert!(app.variables["token"].default.is_none());
    }

    #[test]
    fn build_command_may_be_a_list() {
        let text = BASE.replace(
            "command = \"cargo build\"",
            "command = [\"echo one\", \"echo two\"]",
        );
        let app = parse(&text).unwrap();
        assert_eq!(
            app.components["one"].build.as_ref().unwrap().commands,
            ["echo one", "echo two"]
        );
    }

    #[test]
    fn trigger_naming_an_unknown_component_is_rejected() {
        let text = BASE.replace(
            "component = \"one\"\n[[trigger.http]]",
            "component = \"nope\"\n[[trigger.http]]",
        );
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("`nope`"), "{err}");
        assert!(err.contains("not defined"), "{err}");
    }

    #[test]
    fn duplicate_routes_are_rejected() {
        let text = BASE.replace("route = \"/b/:id\"", "route = \"/a/...\"");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("duplicate route `/a/...`"), "{err}");
        // A trailing slash does not make a route different.
        let text = BASE.replace("route = \"/b/:id\"", "route = \"/a/.../\"");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn template_naming_an_undefined_variable_is_rejected() {
        let text = BASE.replace("\"{{ greeting }}, world\"", "\"{{ nope }}\"");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("unknown variable \"nope\""), "{err}");
        let text = BASE.replace("\"{{ greeting }}\"]", "\"https://{{ nope }}\"]");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("unknown variable \"nope\""), "{err}");
    }

    #[test]
    fn variable_needs_exactly_one_of_required_and_default() {
        let text = BASE.replace(
            "token = { required = true, secret = true }",
            "token = { required = true, default = \"x\" }",
        );
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(
            err.contains("must be `required` OR have a `default`"),
            "{err}"
        );
        let text = BASE.replace("token = { required = true, secret = true }", "token = {}");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn invalid_names_are_rejected() {
        let text = BASE.replace("greeting = { default", "Greeting = { default");
        assert!(parse(&text).is_err());
        let text = BASE.replace("[component.one", "[component.One_");
        assert!(parse(&text).is_err());
        let text = BASE.replace("\"other_db\"", "\"bad label\"");
        assert!(parse(&text).is_err());
        let text = BASE.replace(
            "[component.one.variables]\n",
            "[component.one.variables]\nBad = \"x\"\n",
        );
        assert!(parse(&text).is_err());
    }

    #[test]
    fn unsupported_features_are_rejected_clearly() {
        let text = BASE.replace("spin_manifest_version = 2", "spin_manifest_version = 1");
        assert!(format!("{:#}", parse(&text).unwrap_err()).contains("manifest version"));
        let text = BASE.replace(
            "[[trigger.http]]\nroute = \"/a/...\"",
            "[[trigger.redis]]\nchannel = \"x\"",
        );
        assert!(format!("{:#}", parse(&text).unwrap_err()).contains("unsupported trigger type"));
        let text = BASE.replace(
            "component = \"one\"\n[component.one]",
            "component = { source = \"x.wasm\" }\n[component.one]",
        );
        assert!(format!("{:#}", parse(&text).unwrap_err()).contains("inline"));
        let text = BASE.replace(
            "source = \"target/one.wasm\"",
            "source = \"target/one.wasm\"\nfiles = [\"static/*\"]",
        );
        assert!(format!("{:#}", parse(&text).unwrap_err()).contains("files"));
        let text = BASE.replace(
            "source = \"target/one.wasm\"",
            "source = \"target/one.wasm\"\nbogus = 1",
        );
        assert!(parse(&text).is_err());
    }

    #[test]
    fn private_routes_are_skipped() {
        let text = BASE.replace("route = \"/b/:id\"", "route = { private = true }");
        let app = parse(&text).unwrap();
        assert_eq!(app.triggers.len(), 1);
        let text = BASE.replace("route = \"/b/:id\"", "route = { private = false }");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn ids_follow_spin_rules() {
        assert!(validate_id("images", '-').is_ok());
        assert!(validate_id("glance-images2", '-').is_ok());
        assert!(validate_id("ALL-CAPS", '-').is_ok());
        assert!(validate_id("snake_case", '-').is_err());
        assert!(validate_id("2x", '-').is_err());
        assert!(validate_id("a--b", '-').is_err());
        assert!(validate_id("MiXed", '-').is_err());
        assert!(validate_label("image_data").is_ok());
        assert!(validate_label("image-data").is_ok());
        assert!(validate_label("image data").is_err());
    }
}
