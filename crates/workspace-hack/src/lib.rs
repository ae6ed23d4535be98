//! No code: this crate exists for its `Cargo.toml`, which turns on, in a build of the
//! host alone (`make up`, `bench/*.sh`), the dependency features a workspace test build
//! turns on, so the two share one set of compiled dependencies instead of rebuilding
//! each other's. `scripts/check-feature-unification.sh` keeps the list exact.
