//! Membership of a consumer group, made visible: which partitions of the topic this
//! process holds. With several hosts in one group (README, "More than one host") the
//! partitions are split between them, and they move when a host joins or dies; each
//! rebalance is logged and reported to an [`AssignmentObserver`] (the host turns it
//! into the `cinema_kafka_assigned_partitions{group}` gauge).

use std::sync::Arc;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};

/// What an [`AssignmentObserver`] calls with the partitions held.
type Observe = dyn Fn(&[i32]) + Send + Sync;

/// Told the partitions a consumer holds after each rebalance (sorted; empty when they
/// were revoked). A no-op by default.
#[derive(Clone, Default)]
pub struct AssignmentObserver(Option<Arc<Observe>>);

impl AssignmentObserver {
    pub fn new(observe: impl Fn(&[i32]) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(observe)))
    }

    fn tell(&self, partitions: &[i32]) {
        if let Some(observe) = &self.0 {
            observe(partitions);
        }
    }
}

impl std::fmt::Debug for AssignmentObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "AssignmentObserver(set)"
        } else {
            "AssignmentObserver(none)"
        })
    }
}

/// The consumers' context: reports their assignment on every rebalance.
pub(crate) struct GroupContext {
    /// Who consumes, for the log (`ugc-loader`, `ugc read models`).
    pub(crate) who: &'static str,
    pub(crate) group: String,
    pub(crate) observer: AssignmentObserver,
}

/// A consumer of one of the UGC groups.
pub(crate) type GroupConsumer = StreamConsumer<GroupContext>;

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // The consumers use the eager protocol: an assignment replaces the previous
        // one whole, and a revocation takes everything.
        let mut partitions: Vec<i32> = match rebalance {
            Rebalance::Assign(list) => list.elements().iter().map(|e| e.partition()).collect(),
            Rebalance::Revoke(_) => Vec::new(),
            Rebalance::Error(error) => {
                tracing::warn!(%error, group = %self.group, "{}: rebalance failed", self.who);
                return;
            }
        };
        partitions.sort_unstable();
        tracing::info!(group = %self.group, ?partitions, "{}: partitions assigned", self.who);
        self.observer.tell(&partitions);
    }
}
