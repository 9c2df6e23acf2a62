//! Application and component variables (`fermyon:spin/variables@2.0.0`).
//!
//! Mirrors spinframework/spin crates/expressions (resolver), crates/variables-env (the
//! default provider) and crates/factor-variables/src/host.rs (the guest-facing errors):
//! - an application variable's value comes from the environment variable
//!   `SPIN_VARIABLE_<NAME upper-cased>`, else from a `.env` file in the working directory,
//!   else from its `default`; a required variable with no value stops start-up;
//! - a component variable is a template over application variables;
//! - `get(name)` validates the name (`invalid-name`), then looks it up among the calling
//!   component's variables (`undefined` if absent).
//!
//! Values are resolved once at start-up (Spin reads the environment lazily; the process
//! environment does not change while the host runs, so the values are the same).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};

use crate::manifest::{App, Component};
use crate::template::validate_variable_name;

/// The prefix of environment variables that set application variables.
pub const ENV_PREFIX: &str = "SPIN_VARIABLE";

/// Resolved application variable values.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: BTreeMap<String, String>,
}

/// A source of values other than the manifest defaults (the process environment, `.env`).
pub trait Provider {
    /// The value of `SPIN_VARIABLE_<NAME>` for `name`, if set; an error if set but unusable.
    fn get(&self, name: &str) -> Result<Option<String>, String>;
}

/// Spin's default provider: process environment, then `.env` in the working directory.
pub struct EnvProvider {
    dotenv: HashMap<String, String>,
}

impl EnvProvider {
    /// Reads `.env` in `cwd` if present (lines `KEY=VALUE`, `#` comments, optional quotes).
    pub fn new(cwd: &Path) -> Self {
        let dotenv = std::fs::read_to_string(cwd.join(".env"))
            .map(|text| parse_dotenv(&text))
            .unwrap_or_default();
        Self { dotenv }
    }
}

fn parse_dotenv(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            out.insert(k.trim().to_string(), v.to_string());
        }
    }
    out
}

impl Provider for EnvProvider {
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        let key = format!("{ENV_PREFIX}_{}", name.to_ascii_uppercase());
        match std::env::var(&key) {
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(self.dotenv.get(&key).cloned()),
            Err(e) => Err(format!("failed to resolve env var {key}: {e}")),
        }
    }
}

impl AppVariables {
    /// Resolves every application variable: provider first, then the default.
    pub fn resolve(app: &App, provider: &dyn Provider) -> Result<Self> {
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, var) in &app.variables {
            match provider.get(name) {
                Ok(Some(v)) => {
                    values.insert(name.clone(), v);
                }
                Ok(None) => match &var.default {
                    Some(d) => {
                        values.insert(name.clone(), d.clone());
                    }
                    None => missing.push(name.clone()),
                },
                Err(e) => bail!("provider error: {e}"),
            }
        }
        if !missing.is_empty() {
            let keys: Vec<String> = missing
                .iter()
                .map(|m| format!("{m:?} (set {ENV_PREFIX}_{})", m.to_ascii_uppercase()))
                .collect();
            bail!(
                "provider error: no provider resolved required variable(s): [{}]",
                keys.join(", ")
            );
        }
        Ok(Self { values })
    }

    /// The value of an application variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Renders a template over the application variables.
    pub fn render(&self, template: &crate::template::Template) -> Result<String> {
        template.render(|v| match self.get(v) {
            Some(s) => Ok(s.to_string()),
            None => bail!("invalid variable template: unknown variable {v:?}"),
        })
    }
}

/// Guest-facing variables error, mapped onto the WIT `error` variant by the host binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableError {
    /// The name breaks the variable-name rules.
    InvalidName(String),
    /// The component has no such variable.
    Undefined(String),
}

/// One component's resolved variables.
#[derive(Debug, Clone)]
pub struct ComponentVariables {
    component_id: String,
    values: HashMap<String, String>,
}

impl ComponentVariables {
    /// Resolves a component's variable templates against the application variables.
    pub fn resolve(component: &Component, app_vars: &AppVariables) -> Result<Self> {
        let mut values = HashMap::new();
        for (name, template) in &component.variables {
            values.insert(name.clone(), app_vars.render(template)?);
        }
        Ok(Self {
            component_id: component.id.clone(),
            values,
        })
    }

    /// `fermyon:spin/variables.get`, with Spin's error values.
    pub fn get(&self, name: &str) -> Result<String, VariableError> {
        validate_variable_name(name).map_err(VariableError::InvalidName)?;
        self.values.get(name).cloned().ok_or_else(|| {
            VariableError::Undefined(format!("no variable for {:?}.{name:?}", self.component_id))
        })
    }
}

/// The per-instance `fermyon:spin/variables` implementation.
pub struct VariablesInstance(pub Arc<ComponentVariables>);

impl crate::bindings::variables::Host for VariablesInstance {
    async fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<String, crate::bindings::variables::Error>> {
        use crate::bindings::variables::Error;
        Ok(self.0.get(&name).map_err(|e| match e {
            VariableError::InvalidName(m) => Error::InvalidName(m),
            VariableError::Undefined(m) => Error::Undefined(m),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct MapProvider(HashMap<String, String>);
    impl Provider for MapProvider {
        fn get(&self, name: &str) -> Result<Option<String>, String> {
            Ok(self.0.get(name).cloned())
        }
    }

    fn app(vars: &str) -> App {
        let text = format!(
            r#"spin_manifest_version = 2
[application]
name = "t"
[variables]
{vars}
[component.c]
source = "c.wasm"
[component.c.variables]
greeting = "{{{{ greeting }}}}, {{{{ who }}}}!"
plain = "literal"
"#
        );
        App::parse(&text, PathBuf::from("/a")).unwrap()
    }

    #[test]
    fn defaults_and_overrides() {
        let app = app("greeting = { default = \"hello\" }\nwho = { default = \"world\" }");
        let none = MapProvider(HashMap::new());
        let vars = AppVariables::resolve(&app, &none).unwrap();
        let c = ComponentVariables::resolve(&app.components["c"], &vars).unwrap();
        assert_eq!(c.get("greeting").unwrap(), "hello, world!");
        assert_eq!(c.get("plain").unwrap(), "literal");

        let over = MapProvider(HashMap::from([("who".to_string(), "glance".to_string())]));
        let vars = AppVariables::resolve(&app, &over).unwrap();
        let c = ComponentVariables::resolve(&app.components["c"], &vars).unwrap();
        assert_eq!(c.get("greeting").unwrap(), "hello, glance!");
    }

    #[test]
    fn errors_match_spin() {
        let app = app("greeting = { default = \"hello\" }\nwho = { default = \"world\" }");
        let vars = AppVariables::resolve(&app, &MapProvider(HashMap::new())).unwrap();
        let c = ComponentVariables::resolve(&app.components["c"], &vars).unwrap();
        assert_eq!(
            c.get("missing").unwrap_err(),
            VariableError::Undefined("no variable for \"c\".\"missing\"".into())
        );
        assert!(matches!(
            c.get("Not-Valid").unwrap_err(),
            VariableError::InvalidName(m) if m.starts_with("\"Not-Valid\": invalid character")
        ));
    }

    #[test]
    fn required_variable_without_value_fails() {
        let app = app("greeting = { required = true }\nwho = { default = \"world\" }");
        let err = AppVariables::resolve(&app, &MapProvider(HashMap::new())).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("no provider resolved required variable(s)"),
            "{msg}"
        );
        assert!(msg.contains("SPIN_VARIABLE_GREETING"), "{msg}");
        let given = MapProvider(HashMap::from([("greeting".to_string(), "hi".to_string())]));
        assert!(AppVariables::resolve(&app, &given).is_ok());
    }

    #[test]
    fn dotenv_lines() {
        let m = parse_dotenv(
            "# c\nSPIN_VARIABLE_A=1\nexport SPIN_VARIABLE_B = \"two\"\n\nX='3'\nbad line\n",
        );
        assert_eq!(m["SPIN_VARIABLE_A"], "1");
        assert_eq!(m["SPIN_VARIABLE_B"], "two");
        assert_eq!(m["X"], "3");
        assert_eq!(m.len(), 3);
    }
}
