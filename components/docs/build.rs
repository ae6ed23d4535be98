//! Checks that Swagger UI's files are vendored (scripts/vendor-swagger-ui.sh, which
//! `make components` runs) and hands their version to the crate, which embeds them.

use std::path::Path;

const FILES: [&str; 4] = [
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "favicon-32x32.png",
];

fn main() {
    let vendor = Path::new(env!("CARGO_MANIFEST_DIR")).join("vendor");
    println!("cargo:rerun-if-changed={}", vendor.display());
    let version = std::fs::read_to_string(vendor.join("VERSION")).unwrap_or_default();
    let missing: Vec<_> = FILES
        .iter()
        .filter(|file| !vendor.join(file).is_file())
        .collect();
    if version.trim().is_empty() || !missing.is_empty() {
        panic!(
            "Swagger UI is not vendored into {} (missing: VERSION or {missing:?}): run \
             scripts/vendor-swagger-ui.sh (`make components` runs it), then build again",
            vendor.display()
        );
    }
    println!("cargo:rustc-env=SWAGGER_UI_VERSION={}", version.trim());
}
