//! `cinema check-imports`: proves that built components import only what the platform
//! world (`wit/`, world `edge`) allows.
//!
//! The world is the contract with every host a component may run on (a real Spin, the
//! embedded runtime); an import outside it would work here and break there, or the
//! reverse. Versions are matched the way the component model links them: same package
//! and interface, semver-compatible (same minor for `0.x`), and no newer than the world.

use std::collections::BTreeMap;
use std::path::Path;

/// Why the check could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportCheckError {
    #[error("failed to load the platform world from {dir}: {message}")]
    World { dir: String, message: String },
    #[error("failed to read component {path}: {message}")]
    Component { path: String, message: String },
    #[error(
        "{path} imports what the platform world does not allow: {imports:?} (allowed: see wit/platform.wit)"
    )]
    Forbidden { path: String, imports: Vec<String> },
}

/// `package:namespace/interface` and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VersionedName {
    name: String,
    version: Option<semver::Version>,
}

impl VersionedName {
    fn parse(text: &str) -> Self {
        match text.split_once('@') {
            Some((name, version)) => Self {
                name: name.to_owned(),
                version: semver::Version::parse(version).ok(),
            },
            None => Self {
                name: text.to_owned(),
                version: None,
            },
        }
    }
}

/// Whether a guest asking for `wanted` can link against `provided`.
fn compatible(wanted: &Option<semver::Version>, provided: &Option<semver::Version>) -> bool {
    match (wanted, provided) {
        (None, None) => true,
        (Some(w), Some(p)) => {
            let same_track = if w.major == 0 {
                p.major == 0 && w.minor == p.minor
            } else {
                w.major == p.major
            };
            same_track && w <= p
        }
        _ => false,
    }
}

/// The interfaces a world imports (including ones pulled in through `use`).
#[derive(Debug, Clone)]
pub struct AllowedImports {
    by_name: BTreeMap<String, Vec<Option<semver::Version>>>,
}

impl AllowedImports {
    /// Loads `world` from the WIT package in `dir`.
    pub fn load(dir: &Path, world: &str) -> Result<Self, ImportCheckError> {
        let error = |message: String| ImportCheckError::World {
            dir: dir.display().to_string(),
            message,
        };
        let mut resolve = wit_parser::Resolve::default();
        let (package, _) = resolve.push_dir(dir).map_err(|e| error(format!("{e:#}")))?;
        let world_id = resolve
            .select_world(&[package], Some(world))
            .map_err(|e| error(format!("{e:#}")))?;
        let mut by_name: BTreeMap<String, Vec<Option<semver::Version>>> = BTreeMap::new();
        for key in resolve.worlds[world_id].imports.keys() {
            let name = match key {
                wit_parser::WorldKey::Interface(id) => resolve.id_of(*id),
                wit_parser::WorldKey::Name(name) => Some(name.clone()),
            };
            if let Some(name) = name {
                let parsed = VersionedName::parse(&name);
                by_name.entry(parsed.name).or_default().push(parsed.version);
            }
        }
        Ok(Self { by_name })
    }

    /// Whether one import name is allowed.
    pub fn allows(&self, import: &str) -> bool {
        let wanted = VersionedName::parse(import);
        self.by_name.get(&wanted.name).is_some_and(|versions| {
            versions
                .iter()
                .any(|provided| compatible(&wanted.version, provided))
        })
    }

    /// Checks one component file; returns its imports when all are allowed.
    pub fn check_component(
        &self,
        engine: &wasmtime::Engine,
        path: &Path,
    ) -> Result<Vec<String>, ImportCheckError> {
        let component = wasmtime::component::Component::from_file(engine, path).map_err(|e| {
            ImportCheckError::Component {
                path: path.display().to_string(),
                message: format!("{e:#}"),
            }
        })?;
        let imports: Vec<String> = component
            .component_type()
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let forbidden: Vec<String> = imports
            .iter()
            .filter(|name| !self.allows(name))
            .cloned()
            .collect();
        if forbidden.is_empty() {
            Ok(imports)
        } else {
            Err(ImportCheckError::Forbidden {
                path: path.display().to_string(),
                imports: forbidden,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> AllowedImports {
        AllowedImports::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit"),
            "edge",
        )
        .expect("wit/ loads")
    }

    /// The platform world admits Spin's interfaces and std's WASI 0.2 at older patches.
    #[test]
    fn platform_world_admits_its_interfaces() {
        let allowed = allowed();
        for name in [
            "spin:postgres/postgres@4.2.0",
            "spin:key-value/key-value@3.0.0",
            "spin:variables/variables@3.0.0",
            "wasi:http/client@0.3.0",
            "wasi:http/types@0.3.0",
            "wasi:io/streams@0.2.6",
            "wasi:cli/environment@0.2.0",
        ] {
            assert!(allowed.allows(name), "{name}");
        }
    }

    /// Interfaces Spin does not give edge components, or newer versions, are refused.
    #[test]
    fn platform_world_refuses_everything_else() {
        let allowed = allowed();
        for name in [
            "spin:sqlite/sqlite@3.1.0",
            "spin:redis/redis@3.0.0",
            "wasi:sockets/tcp@0.2.6",
            "wasi:filesystem/types@0.2.6",
            "spin:postgres/postgres@4.3.0",
            "wasi:io/streams@0.3.0",
        ] {
            assert!(!allowed.allows(name), "{name}");
        }
    }
}
