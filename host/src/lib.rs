//! The `cinema` host: one binary that runs the stateful half of the platform and
//! serves the edge components.
//!
//! Tour:
//! - [`cli`]: subcommands and their typed settings;
//! - [`manifest`]: `spin.toml` parsing and validation;
//! - [`runtime`]: the embedded Spin-compatible component runtime (`cinema up`);
//! - [`internal_api`]: health and metrics on the internal port; [`internal_auth`]:
//!   the credential every other internal route needs, and user tokens for writes;
//! - [`search_api`]: the catalog's search routes on the internal port, over the index
//!   the ETL (`cinema-etl`) keeps; [`search_ops`]: the ETL under `cinema up`, `cinema reindex`;
//! - [`migrate`]: `cinema migrate` for Postgres and ClickHouse;
//! - [`imports`]: `cinema check-imports`, the guard on the `wit/` contract;
//! - [`auth_ops`]: `cinema keys ...` and `cinema users create-admin`;
//! - [`seed`]: `cinema seed --films N`, a deterministic content data set;
//! - [`first_run`]: `cinema up --first-run` (a usable empty platform) and `--production`;
//! - [`intake`]: UGC event intake (Kafka, with a durable local spool) on the internal
//!   port; [`ugc_ops`]: the intake and the ugc-loader under `cinema up`; [`notify_ops`]: mail;
//! - [`analytics_api`]: UGC analytics over ClickHouse on the internal port;
//! - [`revocations`]: recent session and user revocations, served to components.

pub mod analytics_api;
pub mod auth_ops;
pub mod cli;
pub mod first_run;
pub mod imports;
pub mod intake;
pub mod internal_api;
pub mod internal_auth;
pub mod manifest;
pub mod migrate;
pub mod notify_ops;
pub mod revocations;
pub mod runtime;
pub mod search_api;
pub mod search_ops;
pub mod seed;
pub mod ugc_ops;
