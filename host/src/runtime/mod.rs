//! The embedded component runtime: serves a Spin application (`spin.toml`) the way
//! `spin up` does, on wasmtime with the pooling allocator.
//!
//! Tour, one module per concern (Spin's own runtime is split the same way, one crate per
//! capability given to guests):
//! - [`router`]: Spin's route syntax and precedence;
//! - [`outbound`]: `allowed_outbound_hosts` parsing and matching;
//! - [`variables`], [`key_value`], [`postgres`], [`http_outbound`]: one module per
//!   interface a guest may import, each with its `add_to_linker`;
//! - [`in_process`]: guests' requests to the host's own internal API, answered without
//!   the network;
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
pub mod in_process;
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
    /// Requests one instance serves at the same time, unless its component's
    /// [`ComponentLimits`] say otherwise.
    pub max_concurrent_requests_per_instance: usize,
    /// How long an idle instance is kept for reuse.
    pub idle_instance_timeout: Duration,
    /// Requests in flight at once across all components, shared out between them: each
    /// component gets an equal share unless its [`ComponentLimits`] name one, so a
    /// burst on some components never leaves another without instances. The pooling
    /// allocator reserves `serving_threads + 1` times as many instance slots (instances
    /// each serving thread keeps idle for reuse, instances retiring while their
    /// successor starts).
    pub max_instances: u32,
    /// How long a request waits for its component's share before it is answered 503
    /// (`component_busy`, with `Retry-After`).
    pub queue_timeout: Duration,
    /// Postgres connections per distinct address.
    pub postgres_pool_size: usize,
    /// Threads serving the public listener, each with its own instances of every
    /// component (see [`server`]): a request never leaves the thread its connection
    /// lives on.
    pub serving_threads: usize,
    /// Write `/tmp/perf-<pid>.map` so `perf` names the compiled guest functions.
    pub guest_perf_map: bool,
}

/// Serving threads for a requested count: 0 means one per core (at least one).
pub fn serving_threads(requested: usize) -> usize {
    match requested {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        threads => threads,
    }
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            request_deadline: Duration::from_secs(10),
            memory_limit_bytes: 128 << 20,
            max_instance_reuse: 10_000,
            max_concurrent_requests_per_instance: 1,
            idle_instance_timeout: Duration::from_secs(10),
            max_instances: 256,
            queue_timeout: Duration::from_secs(2),
            postgres_pool_size: 16,
            serving_threads: serving_threads(0),
            guest_perf_map: false,
        }
    }
}

/// One component's own limits (`[component_limits.<id>]` in the runtime config; Spin
/// has no such table, so keep it out of a file Spin reads).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentLimits {
    /// Requests one instance of this component serves at the same time (stateless
    /// async components can take many; a trap then fails the requests it was serving).
    pub max_concurrent_requests_per_instance: Option<usize>,
    /// Requests of this component in flight at once: its share of the instance pool.
    pub max_requests_in_flight: Option<usize>,
}

/// The limits one component runs with, resolved from the settings and its
/// [`ComponentLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedLimits {
    pub max_concurrent_requests_per_instance: usize,
    pub max_requests_in_flight: usize,
}

/// Each component's limits: its own where the runtime config names them, else the
/// per-instance default and an equal share of `max_instances`.
pub fn resolve_limits<'a>(
    settings: &RuntimeSettings,
    configured: &BTreeMap<String, ComponentLimits>,
    component_ids: impl ExactSizeIterator<Item = &'a String>,
) -> Result<BTreeMap<String, ResolvedLimits>, LoadError> {
    let ids: Vec<&String> = component_ids.collect();
    if let Some(unknown) = configured.keys().find(|id| !ids.contains(id)) {
        return Err(LoadError::RuntimeConfig {
            path: "component_limits".into(),
            message: format!("`{unknown}` is not a component of this application"),
        });
    }
    let equal_share = (settings.max_instances as usize / ids.len().max(1)).max(1);
    Ok(ids
        .into_iter()
        .map(|id| {
            let own = configured.get(id).cloned().unwrap_or_default();
            let limits = ResolvedLimits {
                max_concurrent_requests_per_instance: own
                    .max_concurrent_requests_per_instance
                    .unwrap_or(settings.max_concurrent_requests_per_instance)
                    .max(1),
                max_requests_in_flight: own.max_requests_in_flight.unwrap_or(equal_share).max(1),
            };
            (id.clone(), limits)
        })
        .collect())
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
    /// Cinema's own: per-component limits (not a Spin table).
    #[serde(default)]
    pub component_limits: BTreeMap<String, ComponentLimits>,
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
    /// Per serving thread, the instance handler of every component (in router order):
    /// instances live and serve on the thread their requests arrive on, so a request
    /// never waits for a wake-up from another thread.
    lanes: Vec<Vec<ProxyHandler<ComponentInstances>>>,
    /// Each component's share of requests in flight, across every serving thread (same
    /// order as each lane).
    shares: Vec<tokio::sync::Semaphore>,
    queue_timeout: Duration,
    metrics: RuntimeMetrics,
    engine: Engine,
    shutting_down: Arc<std::sync::atomic::AtomicBool>,
    in_process: in_process::InProcessApi,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Virtual address space reserved per guest memory: 4 GiB, all a 32-bit memory can
/// address.
const GUEST_MEMORY_RESERVATION: u64 = 1 << 32;

/// Builds the one `Engine` of the process, its instance pool sized for `instances`
/// requests in flight: room for those, for the instances each serving thread keeps
/// idle for reuse (a thread keeps its own), and for instances retiring while their
/// successors start.
pub fn build_engine(settings: &RuntimeSettings, instances: u32) -> Result<Engine, LoadError> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    let mut pool = PoolingAllocationConfig::default();
    let copies = u32::try_from(settings.serving_threads.max(1))
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let instances = instances.saturating_mul(copies);
    pool.total_component_instances(instances);
    pool.total_core_instances(instances * 8);
    pool.total_memories(instances * 4);
    pool.total_tables(instances * 8);
    pool.max_memory_size(settings.memory_limit_bytes);
    // Reserve the whole 32-bit address space per memory (virtual only; what a guest may
    // use stays `memory_limit_bytes`): compiled code then needs no bounds check on
    // guest memory accesses, which a smaller reservation forces on every load and
    // store.
    config.memory_reservation(GUEST_MEMORY_RESERVATION);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if settings.guest_perf_map {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
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
            in_process: in_process::InProcessApi::default(),
        };
        let limits = resolve_limits(
            &settings,
            &runtime_config.component_limits,
            manifest.components.keys(),
        )?;
        let total_in_flight: usize = limits.values().map(|l| l.max_requests_in_flight).sum();
        let settings = Arc::new(settings);
        let engine = build_engine(
            &settings,
            u32::try_from(total_in_flight)
                .unwrap_or(u32::MAX)
                .max(settings.max_instances),
        )?;
        let linker = build_linker(&engine).map_err(|e| LoadError::Engine(format!("{e:#}")))?;

        let shutting_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lane_count = settings.serving_threads.max(1);
        let mut index_of = BTreeMap::new();
        let mut lanes: Vec<Vec<ProxyHandler<ComponentInstances>>> =
            (0..lane_count).map(|_| Vec::new()).collect();
        let mut shares = Vec::new();
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
            let own_limits = limits[id];
            tracing::info!(
                component = %id,
                compile_ms = started.elapsed().as_millis() as u64,
                outbound = %context.outbound,
                concurrent_per_instance = own_limits.max_concurrent_requests_per_instance,
                in_flight = own_limits.max_requests_in_flight,
                "component ready"
            );
            shares.push(tokio::sync::Semaphore::new(
                own_limits.max_requests_in_flight,
            ));
            index_of.insert(id.clone(), lanes[0].len());
            let context = Arc::new(context);
            for lane in &mut lanes {
                lane.push(ProxyHandler::new(ComponentInstances {
                    engine: engine.clone(),
                    pre: ProxyPre::P3(pre.clone()),
                    component: context.clone(),
                    shared: shared.clone(),
                    settings: settings.clone(),
                    limits: own_limits,
                    metrics: metrics.clone(),
                    shutting_down: shutting_down.clone(),
                }));
            }
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
            lanes,
            shares,
            queue_timeout: settings.queue_timeout,
            metrics,
            engine,
            shutting_down,
            in_process: shared.in_process,
        })
    }

    /// From now on, guests' requests to `listening_on` (the host's internal API) are
    /// answered by `router` in-process instead of over a new TCP connection each.
    pub fn serve_in_process(&self, listening_on: std::net::SocketAddr, router: axum::Router) {
        self.in_process.serve(listening_on, router);
    }

    /// Marks the start of shutdown: instances torn down from now on are expected.
    pub fn begin_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many serving threads the instances are laid out for.
    pub fn serving_threads(&self) -> usize {
        self.lanes.len()
    }

    /// Ids of the loaded components.
    pub fn component_ids(&self) -> Vec<String> {
        self.lanes[0]
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
