//! Instance life cycle for one component: wasmtime-wasi-http's `ProxyHandler`
//! configured with the platform's limits.
//!
//! An instance is created from the component's pre-instance, serves up to
//! `max_instance_reuse` requests (at most `max_concurrent_requests_per_instance` at a
//! time: with 1 a trap only ever fails the request that caused it, with more it fails
//! the requests that instance is serving), and is dropped after
//! `idle_instance_timeout` without work. Every request has a deadline, kept per request
//! ([`InFlight`]): the epoch callback traps a guest still computing once its oldest
//! request is past it, and a guest that is waiting (on I/O) past it has that request
//! expired. A failed instance is logged with the ids of every request it was serving.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use super::component::ComponentContext;
use super::http_outbound::OutboundHttpHooks;
use super::metrics::RuntimeMetrics;
use super::state::{InFlight, InstanceState, SharedServices};
use super::{ResolvedLimits, RuntimeSettings};

/// Per-request data threaded into the worker.
pub struct RequestData {
    pub request_id: Arc<str>,
}

/// Creates instances of one component.
pub struct ComponentInstances {
    pub engine: wasmtime::Engine,
    pub pre: ProxyPre<InstanceState>,
    pub component: Arc<ComponentContext>,
    pub shared: SharedServices,
    pub settings: Arc<RuntimeSettings>,
    pub limits: ResolvedLimits,
    pub metrics: RuntimeMetrics,
    /// Set once the host is shutting down: instances dropped then are not failures.
    pub shutting_down: Arc<AtomicBool>,
}

/// Marker error: the guest ran past its request deadline.
#[derive(Debug, thiserror::Error)]
#[error("guest exceeded its request deadline of {0:?}")]
pub struct DeadlineExceeded(pub Duration);

impl HandlerState for ComponentInstances {
    type StoreData = InstanceState;
    type WorkerExpiration = IdleExpiration;
    type WorkerState = InstanceWorker;

    async fn instantiate(
        &self,
    ) -> wasmtime::Result<Instance<InstanceState, IdleExpiration, InstanceWorker>> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.settings.memory_limit_bytes)
            .trap_on_grow_failure(true)
            .build();
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.inherit_stdout().inherit_stderr();
        let state = InstanceState {
            component: self.component.clone(),
            shared: self.shared.clone(),
            table: wasmtime::component::ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            http_hooks: OutboundHttpHooks {
                component_id: self.component.id.clone(),
                policy: self.component.outbound.clone(),
                in_process: self.shared.in_process.clone(),
                in_process_served: self.metrics.in_process_requests(&self.component.id),
            },
            limits,
            in_flight: InFlight::default(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        let deadline = self.settings.request_deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |store| {
            let overdue = store
                .data()
                .in_flight
                .oldest_start()
                .is_some_and(|started| started.elapsed() > deadline);
            if overdue {
                Err(DeadlineExceeded(deadline).into())
            } else {
                // Yield so that other requests on this thread make progress.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let proxy = self.pre.instantiate_async(&mut store).await?;
        self.metrics.instance_created(&self.component.id);
        Ok(Instance {
            store,
            proxy,
            view: |state: &mut InstanceState| state.http(),
            expiration: IdleExpiration {
                idle_timeout: self.settings.idle_instance_timeout,
                deadline,
                sleep: None,
            },
            state: InstanceWorker {
                max_reuse: self.settings.max_instance_reuse,
                max_concurrent: self.limits.max_concurrent_requests_per_instance,
                deadline,
                component_id: self.component.id.clone(),
                metrics: self.metrics.clone(),
                shutting_down: self.shutting_down.clone(),
                served: AtomicU64::new(0),
            },
        })
    }
}

/// Decides when an instance retires.
pub struct IdleExpiration {
    idle_timeout: Duration,
    deadline: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WorkerExpiration for IdleExpiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let limit = match status {
            WorkerStatus::Idle => self.idle_timeout,
            // Second line of defence behind the epoch callback (see ProxyHandler docs):
            // a request that is overdue by a margin retires the whole instance.
            WorkerStatus::Requests | WorkerStatus::PostReturn => {
                self.deadline + Duration::from_secs(1)
            }
        };
        let when = tokio::time::Instant::from_std(start + limit);
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(when)));
        if sleep.deadline() != when {
            sleep.as_mut().reset(when);
        }
        sleep.as_mut().poll(cx)
    }
}

/// Accepts requests for one instance and cleans up after it.
pub struct InstanceWorker {
    max_reuse: usize,
    max_concurrent: usize,
    deadline: Duration,
    component_id: Arc<str>,
    metrics: RuntimeMetrics,
    shutting_down: Arc<AtomicBool>,
    /// Requests this instance accepted so far (numbers them in [`InFlight`]).
    served: AtomicU64,
}

impl WorkerState for InstanceWorker {
    type StoreData = InstanceState;
    type RequestData = RequestData;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_reuse {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        store: StoreContextMut<'_, InstanceState>,
        data: RequestData,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        // The expiration future lives exactly as long as the request is waited for
        // (dropped when the guest answers or the deadline passes), so its guard keeps
        // the request in flight for that long.
        let serial = self.served.fetch_add(1, Ordering::Relaxed);
        let guard = store.data().in_flight.start(data.request_id, serial);
        let deadline = self.deadline;
        Box::pin(async move {
            let _in_flight = guard;
            tokio::time::sleep(deadline).await;
        })
    }

    fn drop(&self, store: Store<InstanceState>, result: wasmtime::Result<()>) {
        self.metrics.instance_dropped(&self.component_id);
        if let Err(error) = result {
            if self.shutting_down.load(Ordering::Relaxed) {
                tracing::debug!(component = %self.component_id, "instance dropped at shutdown");
                return;
            }
            let request_ids = store.data().in_flight.request_ids().join(",");
            tracing::error!(
                component = %self.component_id,
                request_id = if request_ids.is_empty() { "-" } else { request_ids.as_str() },
                error = format!("{error:#}"),
                "component instance failed and was discarded"
            );
        }
    }
}
