//! Per-instance store data: what a component instance can reach while it runs.
//!
//! One [`InstanceState`] lives in each wasmtime `Store`. A store serves a bounded number
//! of requests, several at a time when its component allows it (see
//! [`super::handler`]), so nothing request-specific lives here except [`InFlight`]: the
//! start and id of each request the instance is serving, for deadlines and logs.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::component::ComponentContext;
use super::http_outbound::OutboundHttpHooks;
use super::in_process::InProcessApi;
use super::key_value::KeyValueStores;
use super::postgres::PostgresPools;

/// Services shared by every instance of every component.
#[derive(Clone, Debug)]
pub struct SharedServices {
    pub key_value: KeyValueStores,
    pub postgres: PostgresPools,
    /// The host's internal API, for guests' requests to it.
    pub in_process: InProcessApi,
}

/// Store data of one component instance.
pub struct InstanceState {
    /// Which component this is and what its manifest allows.
    pub component: Arc<ComponentContext>,
    pub shared: SharedServices,
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub http_hooks: OutboundHttpHooks,
    pub limits: StoreLimits,
    /// The requests this instance is serving: the epoch callback traps once the oldest
    /// is past its deadline, and a failed instance names them all.
    pub in_flight: InFlight,
}

/// The requests one instance is serving now, each with its own start and id.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<Requests>>);

#[derive(Default)]
struct Requests {
    serving: Vec<InFlightRequest>,
    /// The id of the request started last (a trap ends every request's wait before
    /// the instance is discarded, so this is what its log line can still name).
    last_started: Option<Arc<str>>,
}

struct InFlightRequest {
    serial: u64,
    started: Instant,
    request_id: Arc<str>,
}

/// Removes its request from [`InFlight`] when dropped (the request answered or expired).
pub struct InFlightGuard {
    in_flight: InFlight,
    serial: u64,
}

impl InFlight {
    fn with<T>(&self, f: impl FnOnce(&mut Requests) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records a request starting now; it stays until the guard is dropped.
    pub fn start(&self, request_id: Arc<str>, serial: u64) -> InFlightGuard {
        self.with(|requests| {
            requests.last_started = Some(request_id.clone());
            requests.serving.push(InFlightRequest {
                serial,
                started: Instant::now(),
                request_id,
            });
        });
        InFlightGuard {
            in_flight: self.clone(),
            serial,
        }
    }

    /// When the longest-running request started.
    pub fn oldest_start(&self) -> Option<Instant> {
        self.with(|requests| requests.serving.iter().map(|r| r.started).min())
    }

    /// Ids of the requests in flight, oldest first; when none is, the last one
    /// started.
    pub fn request_ids(&self) -> Vec<Arc<str>> {
        self.with(|requests| {
            if requests.serving.is_empty() {
                requests.last_started.iter().cloned().collect()
            } else {
                requests
                    .serving
                    .iter()
                    .map(|r| r.request_id.clone())
                    .collect()
            }
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let serial = self.serial;
        self.in_flight
            .with(|requests| requests.serving.retain(|r| r.serial != serial));
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}
