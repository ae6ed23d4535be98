//! The embedded component runtime: serves a Spin application (`spin.toml`) the way
//! `spin up` does, on wasmtime with the pooling allocator.
//!
//! Tour, one module per concern (Spin's own runtime is split the same way, one crate per
//! capability given to guests):
//! - [`router`]: Spin's route syntax and precedence;
//! - [`outbound`]: `allowed_outbound_hosts` parsing and matching;
//! - [`variables`], [`key_value`], [`postgres`], [`http_outbound`]: one module per
//!   interface a guest may import, each with its `add_to_linker`;
//! - [`handler`]: instance life cycle (reuse, deadlines, memory limits);
//! - [`server`]: the HTTP front door (request ids, routing, error responses, metrics);
//! - [`metrics`]: Prometheus counters and histograms.
//!
//! Guarantees: each component is compiled once and pre-instantiated at start-up; a guest
//! trap, deadline or memory blow-up fails only its own request (500 with a JSON error
//! body); guests reach only what their manifest entry allows.

pub mod bindings;
pub mod component;
pub mod handler;
pub mod http_outbound;
pub mod key_value;
pub mod metrics;
pub mod outbound;
pub mod postgres;
pub mod router;
pub mod server;
pub mod state;
pub mod variables;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::handler::{ProxyHandler, ProxyPre};

use crate::manifest::{AppManifest, ManifestError};
use component::ComponentContext;
use handler::ComponentInstances;
use key_value::{KeyValueConfigError, KeyValueStores, StoreConfig};
use metrics::RuntimeMetrics;
use postgres::PostgresPools;
use router::Router;
use state::{InstanceState, SharedServices};
use variables::{AppVariables, VariablesError};

/// Limits and pool sizes of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Longest a guest may work on one request.
    pub request_deadline: Duration,
    /// Largest linear memory a guest may grow to.
    pub memory_limit_bytes: usize,
    /// Requests one instance serves before it is replaced.
    pub max_instance_reuse: usize,
    /// Requests one instance serves at the same time.
    pub max_concurrent_requests_per_instance: usize,
    /// How long an idle instance is kept for reuse.
    pub idle_instance_timeout: Duration,
    /// Requests in flight at once across all components (each needs an instance);
    /// more wait in line. The pooling allocator reserves twice as many instance slots,
    /// so instances kept idle for reuse never starve a busy component.
    pub max_instances: u32,
    /// Postgres connections per distinct address.
    pub postgres_pool_size: usize,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            request_deadline: Duration::from_secs(10),
            memory_limit_bytes: 128 << 20,
            max_instance_reuse: 128,
            max_concurrent_requests_per_instance: 1,
            idle_instance_timeout: Duration::from_secs(10),
            max_instances: 256,
            postgres_pool_size: 16,
        }
    }
}

/// Why an application could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Variables(#[from] VariablesError),
    #[error(transparent)]
    KeyValue(#[from] KeyValueConfigError),
    #[error("component `{component}`: {source}")]
    Outbound {
        component: String,
        source: outbound::InvalidOutboundHost,
    },
    #[error("failed to read runtime config {path}: {message}")]
    RuntimeConfig { path: String, message: String },
    #[error(
        "component `{component}` could not be loaded from {path}: {message} (build it with `make components`)"
    )]
    Compile {
        component: String,
        path: String,
        message: String,
    },
    #[error("component `{component}` does not fit the platform: {message}")]
    Link { component: String, message: String },
    #[error("failed to configure wasmtime: {0}")]
    Engine(String),
}

/// Spin's runtime-config file, as far as the host uses it.
#[derive(Debug, Default, Deserialize)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub key_value_store: BTreeMap<String, StoreConfig>,
}

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let error = |message: String| LoadError::RuntimeConfig {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        toml::from_str(&text).map_err(|e| error(e.to_string()))
    }
}

/// A loaded application: compiled components behind their routes.
pub struct App {
    pub name: String,
    router: Router<usize>,
    components: Vec<ProxyHandler<ComponentInstances>>,
    metrics: RuntimeMetrics,
    engine: Engine,
    /// Bounds requests in flight to what the instance pool can hold.
    in_flight: Arc<tokio::sync::Semaphore>,
    shutting_down: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Builds the one `Engine` of the process.
pub fn build_engine(settings: &RuntimeSettings) -> Result<Engine, LoadError> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    let mut pool = PoolingAllocationConfig::default();
    let instances = settings.max_instances.saturating_mul(2);
    pool.total_component_instances(instances);
    pool.total_core_instances(instances * 8);
    pool.total_memories(instances * 4);
    pool.total_tables(instances * 8);
    pool.max_memory_size(settings.memory_limit_bytes);
    config.memory_reservation(settings.memory_limit_bytes as u64);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| LoadError::Engine(format!("{e:#}")))
}

fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    // WASI 0.2 as Rust std uses it: io, clocks, random, stdio, plus environment, exit
    // and the terminal queries.
    wasmtime_wasi::p2::add_to_linker_proxy_interfaces_async(&mut linker)?;
    {
        use wasmtime_wasi::cli::{WasiCli, WasiCliView};
        use wasmtime_wasi::p2::bindings::{cli, random};
        use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
        random::insecure::add_to_linker::<InstanceState, WasiRandom>(
            &mut linker,
            InstanceState::random,
        )?;
        random::insecure_seed::add_to_linker::<InstanceState, WasiRandom>(
            &mut linker,
            InstanceState::random,
        )?;
        cli::environment::add_to_linker::<InstanceState, WasiCli>(&mut linker, InstanceState::cli)?;
        cli::exit::add_to_linker::<InstanceState, WasiCli>(&mut linker, InstanceState::cli)?;
        cli::terminal_input::add_to_linker::<InstanceState, WasiCli>(
            &mut linker,
            InstanceState::cli,
        )?;
        cli::terminal_output::add_to_linker::<InstanceState, WasiCli>(
            &mut linker,
            InstanceState::cli,
        )?;
        cli::terminal_stdin::add_to_linker::<InstanceState, WasiCli>(
            &mut linker,
            InstanceState::cli,
        )?;
        cli::terminal_stdout::add_to_linker::<InstanceState, WasiCli>(
            &mut linker,
            InstanceState::cli,
        )?;
        cli::terminal_stderr::add_to_linker::<InstanceState, WasiCli>(
            &mut linker,
            InstanceState::cli,
        )?;
    }
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    variables::add_to_linker(&mut linker)?;
    key_value::add_to_linker(&mut linker)?;
    postgres::add_to_linker(&mut linker)?;
    Ok(linker)
}

impl App {
    /// Loads, compiles and pre-instantiates every component of the manifest.
    pub fn load(
        manifest_path: &Path,
        runtime_config: &RuntimeConfig,
        settings: RuntimeSettings,
        env: impl IntoIterator<Item = (String, String)>,
        metrics: RuntimeMetrics,
    ) -> Result<Self, LoadError> {
        let manifest = AppManifest::load(manifest_path)?;
        let app_variables = AppVariables::resolve(&manifest, env)?;
        let shared = SharedServices {
            key_value: KeyValueStores::from_config(
                &runtime_config.key_value_store,
                manifest
                    .components
                    .values()
                    .flat_map(|decl| decl.key_value_stores.iter().cloned()),
            )?,
            postgres: PostgresPools::new(settings.postgres_pool_size),
        };
        let settings = Arc::new(settings);
        let engine = build_engine(&settings)?;
        let linker = build_linker(&engine).map_err(|e| LoadError::Engine(format!("{e:#}")))?;

        let shutting_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut index_of = BTreeMap::new();
        let mut components = Vec::new();
        for (id, decl) in &manifest.components {
            let context = ComponentContext::resolve(decl, &app_variables).map_err(|source| {
                LoadError::Outbound {
                    component: id.clone(),
                    source,
                }
            })?;
            let started = std::time::Instant::now();
            let component =
                Component::from_file(&engine, &decl.source).map_err(|e| LoadError::Compile {
                    component: id.clone(),
                    path: decl.source.display().to_string(),
                    message: format!("{e:#}"),
                })?;
            let link_error = |e: wasmtime::Error| LoadError::Link {
                component: id.clone(),
                message: format!("{e:#}"),
            };
            let pre = linker.instantiate_pre(&component).map_err(link_error)?;
            let pre = wasmtime_wasi_http::p3::bindings::ServicePre::new(pre).map_err(link_error)?;
            tracing::info!(
                component = %id,
                compile_ms = started.elapsed().as_millis() as u64,
                outbound = %context.outbound,
                "component ready"
            );
            index_of.insert(id.clone(), components.len());
            components.push(ProxyHandler::new(ComponentInstances {
                engine: engine.clone(),
                pre: ProxyPre::P3(pre),
                component: Arc::new(context),
                shared: shared.clone(),
                settings: settings.clone(),
                metrics: metrics.clone(),
                shutting_down: shutting_down.clone(),
            }));
        }
        let router = Router::new(
            manifest
                .http_triggers
                .iter()
                .map(|t| (t.route.clone(), index_of[&t.component])),
        );
        Ok(Self {
            name: manifest.name,
            router,
            components,
            metrics,
            engine,
            in_flight: Arc::new(tokio::sync::Semaphore::new(settings.max_instances as usize)),
            shutting_down,
        })
    }

    /// Marks the start of shutdown: instances torn down from now on are expected.
    pub fn begin_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Ids of the loaded components.
    pub fn component_ids(&self) -> Vec<String> {
        self.components
            .iter()
            .map(|c| c.state().component.id.to_string())
            .collect()
    }

    /// Advances the engine's epoch every `tick` until the returned guard is dropped:
    /// this is what makes deadlines and time-slicing work.
    pub fn start_epoch_ticker(&self, tick: Duration) -> EpochTicker {
        let engine = self.engine.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cinema-epoch".into())
            .spawn(move || {
                while !thread_stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

/// Stops the epoch thread when dropped.
pub struct EpochTicker {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
