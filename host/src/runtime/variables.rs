//! `spin:variables@3.0.0`: application variables as components see them.
//!
//! Owns resolution: an application variable's value comes from the environment
//! (`SPIN_VARIABLE_<NAME>`, upper-cased, as Spin's environment provider does), else its
//! `default`; a `required` variable with neither stops start-up with a message naming
//! it. Each component sees only its own `[component.<id>.variables]`, whose templates are
//! expanded once at start-up (the provider is static, so request-time resolution would
//! only cost time). Secret values are never logged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use wasmtime::component::{Accessor, HasData};

use super::bindings::spin::variables::variables::{self as wit, Error};
use super::state::InstanceState;
use crate::manifest::{AppManifest, TemplatePart, parse_template};

/// Why variables could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum VariablesError {
    #[error(
        "required variable `{name}` has no value: set SPIN_VARIABLE_{env_suffix} or give it a default in spin.toml"
    )]
    MissingRequired { name: String, env_suffix: String },
}

/// Resolved application variables (name to value).
#[derive(Clone, Default)]
pub struct AppVariables {
    values: BTreeMap<String, String>,
    secret: std::collections::BTreeSet<String>,
}

impl std::fmt::Debug for AppVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.values {
            if self.secret.contains(name) {
                map.entry(name, &"<secret>");
            } else {
                map.entry(name, value);
            }
        }
        map.finish()
    }
}

impl AppVariables {
    /// Resolves every application variable from `env` (normally `std::env::vars()`).
    pub fn resolve(
        manifest: &AppManifest,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, VariablesError> {
        let env: HashMap<String, String> = env.into_iter().collect();
        let mut values = BTreeMap::new();
        let mut secret = std::collections::BTreeSet::new();
        for (name, decl) in &manifest.variables {
            let env_suffix = name.to_ascii_uppercase();
            let value = env
                .get(&format!("SPIN_VARIABLE_{env_suffix}"))
                .cloned()
                .or_else(|| decl.default.clone());
            match value {
                Some(value) => {
                    values.insert(name.clone(), value);
                }
                None if decl.required => {
                    return Err(VariablesError::MissingRequired {
                        name: name.clone(),
                        env_suffix,
                    });
                }
                // Optional without default: templates naming it expand to "".
                None => {
                    values.insert(name.clone(), String::new());
                }
            }
            if decl.secret {
                secret.insert(name.clone());
            }
        }
        Ok(Self { values, secret })
    }

    /// Expands `{{ name }}` references; the manifest guaranteed every name is declared.
    pub fn expand(&self, template: &str) -> String {
        let Some(parts) = parse_template(template) else {
            return template.to_owned();
        };
        parts
            .into_iter()
            .map(|part| match part {
                TemplatePart::Literal(text) => text,
                TemplatePart::Variable(name) => self.values.get(name).map_or("", String::as_str),
            })
            .collect()
    }
}

/// One component's view: its own variables, expanded.
#[derive(Clone, Default)]
pub struct ComponentVariables {
    values: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for ComponentVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl ComponentVariables {
    pub fn new(templates: &BTreeMap<String, String>, app: &AppVariables) -> Self {
        let values = templates
            .iter()
            .map(|(name, template)| (name.clone(), app.expand(template)))
            .collect();
        Self {
            values: Arc::new(values),
        }
    }

    /// Spin's lookup rule: names are matched lower-case; invalid names are errors.
    pub fn get(&self, name: &str) -> Result<String, Error> {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::InvalidName(format!(
                "`{name}`: variable names are letters, digits and `_`, starting with a letter"
            )));
        }
        self.values
            .get(&name.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| {
                Error::Undefined(format!("no variable named `{name}` for this component"))
            })
    }
}

/// `HasData` marker for the variables interface.
pub struct Variables;

impl HasData for Variables {
    type Data<'a> = &'a mut InstanceState;
}

impl wit::Host for InstanceState {}

impl<T> wit::HostWithStore<T> for Variables {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, Error>> {
        Ok(accessor.with(|mut access| access.get().component.variables.get(&name)))
    }
}

/// Adds `spin:variables` to the linker.
pub fn add_to_linker(
    linker: &mut wasmtime::component::Linker<InstanceState>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<InstanceState, Variables>(linker, |state| state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest() -> AppManifest {
        AppManifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
greeting = { default = "hello" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
[component.c.variables]
message = "{{ greeting }}, {{ token }}"
"#,
            Path::new("/"),
        )
        .expect("valid manifest")
    }

    /// An environment variable overrides the default, as Spin's env provider does.
    #[test]
    fn environment_overrides_default() {
        let vars = AppVariables::resolve(
            &manifest(),
            [
                ("SPIN_VARIABLE_GREETING".to_owned(), "hi".to_owned()),
                ("SPIN_VARIABLE_TOKEN".to_owned(), "t0p".to_owned()),
            ],
        )
        .expect("resolves");
        let component = ComponentVariables::new(&manifest().components["c"].variables, &vars);
        assert_eq!(component.get("message").expect("defined"), "hi, t0p");
        assert_eq!(
            component.get("MESSAGE").expect("case-insensitive"),
            "hi, t0p"
        );
    }

    /// A required variable without a value is a start-up error naming it.
    #[test]
    fn missing_required_variable_names_it() {
        let error = AppVariables::resolve(&manifest(), []).expect_err("token is required");
        let text = error.to_string();
        assert!(
            text.contains("`token`") && text.contains("SPIN_VARIABLE_TOKEN"),
            "{text}"
        );
    }

    /// Secrets never appear in debug output.
    #[test]
    fn secrets_are_masked_in_debug_output() {
        let vars = AppVariables::resolve(
            &manifest(),
            [("SPIN_VARIABLE_TOKEN".to_owned(), "t0p".to_owned())],
        )
        .expect("resolves");
        let shown = format!("{vars:?}");
        assert!(
            !shown.contains("t0p") && shown.contains("<secret>"),
            "{shown}"
        );
    }

    /// Unknown and malformed names map to the interface's error variants.
    #[test]
    fn lookup_errors_use_interface_variants() {
        let component = ComponentVariables::default();
        assert!(matches!(component.get("nope"), Err(Error::Undefined(_))));
        assert!(matches!(component.get("no-pe"), Err(Error::InvalidName(_))));
    }
}
