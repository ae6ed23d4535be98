//! Prometheus metrics of the component runtime and of the host's Kafka consumers,
//! exposed by the internal API.
//!
//! Labels stay low-cardinality: component id, route as written in the manifest (never
//! the request path), status class, a fixed set of error kinds, and consumer group.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    component: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    component: String,
    route: String,
    status: StatusClass,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    component: String,
    route: String,
    kind: RequestErrorKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    cause: &'static str,
}

/// HTTP status class of a response.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StatusClass {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
}

impl From<http::StatusCode> for StatusClass {
    fn from(status: http::StatusCode) -> Self {
        match status.as_u16() {
            100..=199 => Self::Informational,
            200..=299 => Self::Success,
            300..=399 => Self::Redirection,
            400..=499 => Self::ClientError,
            _ => Self::ServerError,
        }
    }
}

/// Why the runtime itself failed a request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RequestErrorKind {
    Trap,
    Deadline,
    Instantiation,
    GuestError,
    /// The component's share of the instance pool stayed full past the queue timeout.
    Busy,
}

impl StatusClass {
    fn as_str(self) -> &'static str {
        match self {
            Self::Informational => "1xx",
            Self::Success => "2xx",
            Self::Redirection => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
        }
    }
}

impl RequestErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Trap => "trap",
            Self::Deadline => "deadline",
            Self::Instantiation => "instantiation",
            Self::GuestError => "guest_error",
            Self::Busy => "busy",
        }
    }
}

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

impl EncodeLabelValue for RequestErrorKind {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Handles to every runtime metric; cheap to clone.
#[derive(Clone)]
pub struct RuntimeMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    instances: Family<ComponentLabels, Gauge>,
    instances_created: Family<ComponentLabels, Counter>,
    in_process: Family<ComponentLabels, Counter>,
    assigned_partitions: Family<GroupLabels, Gauge>,
    etl_catch_ups: Counter,
    etl_full_builds: Family<BuildLabels, Counter>,
}

impl std::fmt::Debug for RuntimeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuntimeMetrics")
    }
}

impl Default for RuntimeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RuntimeMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cinema");
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 50 µs .. ~13 s
            Histogram::new(exponential_buckets(0.00005, 2.0, 19))
        });
        let instances = Family::<ComponentLabels, Gauge>::default();
        let instances_created = Family::<ComponentLabels, Counter>::default();
        let in_process = Family::<ComponentLabels, Counter>::default();
        let assigned_partitions = Family::<GroupLabels, Gauge>::default();
        let etl_catch_ups = Counter::default();
        let etl_full_builds = Family::<BuildLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by component, route and status class",
            requests.clone(),
        );
        registry.register(
            "http_request_errors",
            "Requests the runtime failed (trap, deadline, instantiation)",
            errors.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response head",
            latency.clone(),
        );
        registry.register(
            "component_instances",
            "Live component instances",
            instances.clone(),
        );
        registry.register(
            "component_instances_created",
            "Component instances created",
            instances_created.clone(),
        );
        registry.register(
            "internal_api_in_process_requests",
            "Guests' requests to the host's internal API answered in-process",
            in_process.clone(),
        );
        registry.register(
            "kafka_assigned_partitions",
            "Partitions this host's consumer of each group holds (after the last rebalance)",
            assigned_partitions.clone(),
        );
        registry.register(
            "etl_catch_ups",
            "Catch-ups of the search index by `modified` (at connect, periodic, after an overflow)",
            etl_catch_ups.clone(),
        );
        registry.register(
            "etl_full_builds",
            "Full builds of the search index the ETL started, by cause (first_build, mass_update, reindex)",
            etl_full_builds.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                errors,
                latency,
                instances,
                instances_created,
                in_process,
                assigned_partitions,
                etl_catch_ups,
                etl_full_builds,
            }),
        }
    }

    /// Counts the ETL's catch-ups and full builds as `cinema_etl_catch_ups_total` and
    /// `cinema_etl_full_builds_total{cause}`.
    pub fn etl_observer(&self) -> cinema_etl::sync::EtlObserver {
        let catch_ups = self.inner.etl_catch_ups.clone();
        let full_builds = self.inner.etl_full_builds.clone();
        cinema_etl::sync::EtlObserver::new(move |event| match event {
            cinema_etl::sync::EtlEvent::CaughtUp => {
                catch_ups.inc();
            }
            cinema_etl::sync::EtlEvent::FullBuild(cause) => {
                full_builds
                    .get_or_create(&BuildLabels {
                        cause: cause.as_str(),
                    })
                    .inc();
            }
        })
    }

    pub fn request_served(
        &self,
        component: &str,
        route: &str,
        status: http::StatusCode,
        seconds: f64,
    ) {
        self.inner
            .requests
            .get_or_create(&RequestLabels {
                component: component.to_owned(),
                route: route.to_owned(),
                status: status.into(),
            })
            .inc();
        self.inner
            .latency
            .get_or_create(&RouteLabels {
                component: component.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    pub fn request_failed(&self, component: &str, route: &str, kind: RequestErrorKind) {
        self.inner
            .errors
            .get_or_create(&ErrorLabels {
                component: component.to_owned(),
                route: route.to_owned(),
                kind,
            })
            .inc();
    }

    pub fn instance_created(&self, component: &str) {
        let labels = ComponentLabels {
            component: component.to_owned(),
        };
        self.inner.instances.get_or_create(&labels).inc();
        self.inner.instances_created.get_or_create(&labels).inc();
    }

    pub fn instance_dropped(&self, component: &str) {
        let labels = ComponentLabels {
            component: component.to_owned(),
        };
        self.inner.instances.get_or_create(&labels).dec();
    }

    /// The counter of `component`'s requests to the internal API answered in-process.
    pub fn in_process_requests(&self, component: &str) -> Counter {
        self.inner
            .in_process
            .get_or_create(&ComponentLabels {
                component: component.to_owned(),
            })
            .clone()
    }

    /// Reports the partitions this host's consumer of `group` holds as
    /// `cinema_kafka_assigned_partitions{group}`.
    pub fn assigned_partitions(&self, group: &str) -> cinema_kafka::AssignmentObserver {
        let gauge = self
            .inner
            .assigned_partitions
            .get_or_create(&GroupLabels {
                group: group.to_owned(),
            })
            .clone();
        cinema_kafka::AssignmentObserver::new(move |partitions| {
            gauge.set(i64::try_from(partitions.len()).unwrap_or(i64::MAX));
        })
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry);
        text
    }
}
