//! Per-instance store data: what a component instance can reach while it runs.
//!
//! One [`InstanceState`] lives in each wasmtime `Store`. A store serves a bounded number
//! of requests one at a time (see [`super::handler`]), so nothing request-specific
//! lives here except the bookkeeping for the current request's deadline.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::component::ComponentContext;
use super::http_outbound::OutboundHttpHooks;
use super::key_value::KeyValueStores;
use super::postgres::PostgresPools;

/// Services shared by every instance of every component.
#[derive(Clone, Debug)]
pub struct SharedServices {
    pub key_value: KeyValueStores,
    pub postgres: PostgresPools,
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
    /// When the request now running started: the epoch callback traps past its deadline.
    pub request_started: Option<Instant>,
    /// Request id of the request now running, for logs.
    pub request_id: Option<Arc<str>>,
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
