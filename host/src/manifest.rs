//! The Spin application manifest (`spin.toml`, manifest version 2), as far as the
//! platform uses it.
//!
//! This module owns parsing and validation only: it turns the file into typed
//! [`AppManifest`] values, resolves component sources relative to the manifest's folder
//! and checks the cross-references (every trigger names a component, every template
//! names a declared variable). It does not read environment variables or open anything
//! but the manifest itself; [`crate::runtime::variables`] resolves variable values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("failed to read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("manifest {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("manifest uses spin_manifest_version {0}; only version 2 is supported")]
    UnsupportedVersion(u32),
    #[error("trigger for route `{route}` names component `{component}`, which is not defined")]
    UnknownComponent { route: String, component: String },
    #[error("route `{0}` is not valid: routes start with `/`, and `...` may only end them")]
    InvalidRoute(String),
    #[error(
        "variable name `{0}` is not valid: use lowercase letters, digits and `_`, starting with a letter"
    )]
    InvalidVariableName(String),
    #[error("application variable `{0}` cannot be both required and have a default")]
    RequiredWithDefault(String),
    #[error("{context} refers to undeclared variable `{name}` (declare it under [variables])")]
    UndeclaredVariable { context: String, name: String },
    #[error("{context} has a malformed template `{template}`: use `{{{{ name }}}}`")]
    MalformedTemplate { context: String, template: String },
    #[error("two triggers claim route `{0}`")]
    DuplicateRoute(String),
}

/// A parsed, validated `spin.toml`.
#[derive(Debug, Clone)]
pub struct AppManifest {
    /// Folder holding the manifest: component sources are relative to it.
    pub base_dir: PathBuf,
    pub name: String,
    /// Application variables by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// HTTP triggers in file order.
    pub http_triggers: Vec<HttpTrigger>,
    /// Components by id.
    pub components: BTreeMap<String, ComponentDecl>,
}

/// An application variable declaration: `name = { default = "..", secret = true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    /// Secret values are never logged.
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    pub route: String,
    pub component: String,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone)]
pub struct ComponentDecl {
    pub id: String,
    /// Absolute path to the component's `.wasm`.
    pub source: PathBuf,
    /// Outbound hosts as written (may contain `{{ variable }}` templates).
    pub allowed_outbound_hosts: Vec<String>,
    /// Key-value store labels this component may open.
    pub key_value_stores: Vec<String>,
    /// Component variables: name to template.
    pub variables: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: u32,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: String,
    component: String,
}

#[derive(Deserialize)]
struct RawComponent {
    source: String,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

impl AppManifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &base_dir).map_err(|error| match error {
            ManifestError::Parse { source, .. } => ManifestError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parses manifest text; `base_dir` anchors relative component sources.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|source| ManifestError::Parse {
            path: PathBuf::new(),
            source: Box::new(source),
        })?;
        if raw.spin_manifest_version != 2 {
            return Err(ManifestError::UnsupportedVersion(raw.spin_manifest_version));
        }
        for (name, decl) in &raw.variables {
            validate_variable_name(name)?;
            if decl.required && decl.default.is_some() {
                return Err(ManifestError::RequiredWithDefault(name.clone()));
            }
        }
        let components: BTreeMap<String, ComponentDecl> = raw
            .component
            .into_iter()
            .map(|(id, raw)| {
                let source = base_dir.join(&raw.source);
                let decl = ComponentDecl {
                    id: id.clone(),
                    source,
                    allowed_outbound_hosts: raw.allowed_outbound_hosts,
                    key_value_stores: raw.key_value_stores,
                    variables: raw.variables,
                };
                (id, decl)
            })
            .collect();
        for component in components.values() {
            for (name, template) in &component.variables {
                validate_variable_name(name)?;
                let context = format!("variable `{name}` of component `{}`", component.id);
                check_template(template, &context, &raw.variables)?;
            }
            for host in &component.allowed_outbound_hosts {
                let context = format!("allowed_outbound_hosts of component `{}`", component.id);
                check_template(host, &context, &raw.variables)?;
            }
        }
        let mut seen_routes = std::collections::BTreeSet::new();
        let mut http_triggers = Vec::with_capacity(raw.trigger.http.len());
        for trigger in raw.trigger.http {
            crate::runtime::router::RoutePattern::parse(&trigger.route)
                .ok_or_else(|| ManifestError::InvalidRoute(trigger.route.clone()))?;
            if !components.contains_key(&trigger.component) {
                return Err(ManifestError::UnknownComponent {
                    route: trigger.route,
                    component: trigger.component,
                });
            }
            if !seen_routes.insert(trigger.route.clone()) {
                return Err(ManifestError::DuplicateRoute(trigger.route));
            }
            http_triggers.push(HttpTrigger {
                route: trigger.route,
                component: trigger.component,
            });
        }
        Ok(Self {
            base_dir: base_dir.to_owned(),
            name: raw.application.name,
            variables: raw.variables,
            http_triggers,
            components,
        })
    }
}

fn validate_variable_name(name: &str) -> Result<(), ManifestError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ManifestError::InvalidVariableName(name.to_owned()))
    }
}

/// A piece of a `{{ variable }}` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart<'a> {
    Literal(&'a str),
    Variable(&'a str),
}

/// Splits a template into literal text and variable references; `None` when a `{{` is
/// not closed.
pub fn parse_template(template: &str) -> Option<Vec<TemplatePart<'_>>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(TemplatePart::Literal(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        parts.push(TemplatePart::Variable(after[..end].trim()));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest));
    }
    Some(parts)
}

fn check_template(
    template: &str,
    context: &str,
    declared: &BTreeMap<String, VariableDecl>,
) -> Result<(), ManifestError> {
    let parts = parse_template(template).ok_or_else(|| ManifestError::MalformedTemplate {
        context: context.to_owned(),
        template: template.to_owned(),
    })?;
    for part in parts {
        if let TemplatePart::Variable(name) = part
            && !declared.contains_key(name)
        {
            return Err(ManifestError::UndeclaredVariable {
                context: context.to_owned(),
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
api_url = { default = "http://127.0.0.1:3001" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/hello/..."
component = "hello"
[component.hello]
source = "hello.wasm"
allowed_outbound_hosts = ["{{ api_url }}"]
key_value_stores = ["default"]
[component.hello.variables]
greeting = "hi {{ token }}!"
[component.hello.build]
command = "cargo build"
"#;

    /// A complete manifest parses with sources anchored at the manifest's folder.
    #[test]
    fn parses_a_spin_v2_manifest() {
        let manifest = AppManifest::parse(MANIFEST, Path::new("/app")).expect("valid manifest");
        assert_eq!(manifest.name, "demo");
        let hello = &manifest.components["hello"];
        assert_eq!(hello.source, PathBuf::from("/app/hello.wasm"));
        assert_eq!(hello.key_value_stores, ["default"]);
        assert_eq!(manifest.http_triggers[0].route, "/hello/...");
        assert!(manifest.variables["token"].secret);
    }

    /// A trigger naming a component that does not exist is rejected by name.
    #[test]
    fn rejects_trigger_for_unknown_component() {
        let text = MANIFEST.replace("component = \"hello\"", "component = \"nope\"");
        let error = AppManifest::parse(&text, Path::new("/")).expect_err("must fail");
        assert!(error.to_string().contains("`nope`"), "{error}");
    }

    /// Templates may only name declared variables.
    #[test]
    fn rejects_template_naming_undeclared_variable() {
        let text = MANIFEST.replace("{{ token }}", "{{ missing }}");
        let error = AppManifest::parse(&text, Path::new("/")).expect_err("must fail");
        assert!(error.to_string().contains("`missing`"), "{error}");
    }

    /// Template parsing splits literals from variable references.
    #[test]
    fn parses_templates() {
        assert_eq!(
            parse_template("a{{ b }}c{{d}}").expect("well formed"),
            vec![
                TemplatePart::Literal("a"),
                TemplatePart::Variable("b"),
                TemplatePart::Literal("c"),
                TemplatePart::Variable("d"),
            ]
        );
        assert_eq!(parse_template("{{ open"), None);
    }
}
