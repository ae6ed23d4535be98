//! `cinema-worker`: what the host's background workers (the ETL, ugc-loader, the UGC
//! read models, notify, the intake's spool replayer) share to run until they are told
//! to stop.
//!
//! - [`CancellationToken`] (tokio-util's) is the one stop signal: `cinema up` holds the
//!   token and cancels it on shutdown; a worker waits on `stop.cancelled()` beside its
//!   work in a `select!`, or asks `stop.is_cancelled()` between batches. A token
//!   cancelled before a worker looks is still seen, unlike a notification.
//! - [`Backoff`] is the one retry loop: a failed attempt is logged with
//!   [`Backoff::delay`], then [`Backoff::wait`] sleeps that long (doubling up to a
//!   ceiling) unless stopped first. It is a value the loop owns rather than a function
//!   taking the attempt as a closure, because attempts borrow the worker's state
//!   mutably (a connection to reopen, a producer to replace).
//! - [`Tasks`] holds what `cinema up` started for one capability: the token's guard
//!   and the tasks' handles; stopping (or dropping) it cancels the token.
//! - [`Observer`] is how a worker tells the host what happened (for metrics) without
//!   knowing about metrics: a consumer's partitions, the ETL's catch-ups and builds.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
pub use tokio_util::sync::{CancellationToken, DropGuard};

/// Tasks that run until one token is cancelled: when [`Tasks::stop`] is called, or
/// when the `Tasks` is dropped.
#[derive(Debug, Default)]
pub struct Tasks {
    stop: Option<DropGuard>,
    handles: Vec<JoinHandle<()>>,
}

impl Tasks {
    /// Tasks stopped through `stop` (the tasks get clones of it).
    pub fn new(stop: &CancellationToken) -> Self {
        Self {
            stop: Some(stop.clone().drop_guard()),
            handles: Vec::new(),
        }
    }

    /// Runs `task` on the current runtime; [`Tasks::stop`] waits for it.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.handles.push(tokio::spawn(task));
    }

    /// Cancels the token and waits for every task to return.
    pub async fn stop(mut self) {
        drop(self.stop.take());
        for handle in self.handles.drain(..) {
            let _ = handle.await;
        }
    }
}

/// Told each `E` a worker reports (`Observer<[i32]>` the partitions a consumer holds,
/// `Observer<EtlEvent>` the ETL's steps). A no-op by default; cheap to clone.
pub struct Observer<E: ?Sized>(Option<Arc<Observe<E>>>);

/// What an [`Observer`] calls.
type Observe<E> = dyn Fn(&E) + Send + Sync;

impl<E: ?Sized> Observer<E> {
    pub fn new(observe: impl Fn(&E) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(observe)))
    }

    /// Tells the observer, if there is one.
    pub fn tell(&self, event: &E) {
        if let Some(observe) = &self.0 {
            observe(event);
        }
    }
}

impl<E: ?Sized> Clone for Observer<E> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<E: ?Sized> Default for Observer<E> {
    fn default() -> Self {
        Self(None)
    }
}

impl<E: ?Sized> std::fmt::Debug for Observer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(set)"
        } else {
            "Observer(none)"
        })
    }
}

/// Delays between attempts: `first`, then doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Waits `first`, then twice as long each time, never more than `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        let first = first.min(max);
        Self {
            first,
            max,
            next: first,
        }
    }

    /// How long the next [`Backoff::wait`] sleeps (for the log line of a failure).
    pub fn delay(&self) -> Duration {
        self.next
    }

    /// Milliseconds of [`Backoff::delay`], as the workers log them (`retry_in_ms`).
    pub fn delay_ms(&self) -> u64 {
        u64::try_from(self.next.as_millis()).unwrap_or(u64::MAX)
    }

    /// Sleeps [`Backoff::delay`] and doubles it; `false`, at once, when `stop` is
    /// cancelled before or during the sleep: the caller gives up.
    #[must_use = "false means stop: the caller must give up"]
    pub async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            biased;
            () = stop.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    /// Starts over at the first delay (after a success that may be followed by new
    /// failures, such as a connection that worked for a while).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observer_and_its_clones_are_told_each_event_and_a_default_one_nothing() {
        let told = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let observer: Observer<[i32]> = {
            let told = told.clone();
            Observer::new(move |partitions: &[i32]| {
                told.lock().expect("lock").push(partitions.to_vec());
            })
        };
        observer.tell(&[0, 2]);
        observer.clone().tell(&[]);
        Observer::<[i32]>::default().tell(&[1]);
        assert_eq!(*told.lock().expect("lock"), [vec![0, 2], vec![]]);
    }

    #[tokio::test]
    async fn stopping_tasks_cancels_their_token_and_waits_for_them() {
        let stop = CancellationToken::new();
        let mut tasks = Tasks::new(&stop);
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..3 {
            let (stop, finished) = (stop.clone(), finished.clone());
            tasks.spawn(async move {
                stop.cancelled().await;
                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        tasks.stop().await;
        assert_eq!(finished.load(std::sync::atomic::Ordering::SeqCst), 3);

        let dropped = CancellationToken::new();
        drop(Tasks::new(&dropped));
        assert!(dropped.is_cancelled(), "dropping the tasks stops them too");
    }

    #[tokio::test]
    async fn delays_double_up_to_the_ceiling_and_start_over_on_reset() {
        let stop = CancellationToken::new();
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(5));
        let mut delays = Vec::new();
        for _ in 0..5 {
            delays.push(backoff.delay_ms());
            assert!(backoff.wait(&stop).await, "not stopped: try again");
        }
        assert_eq!(delays, [1, 2, 4, 5, 5]);
        backoff.reset();
        assert_eq!(backoff.delay(), Duration::from_millis(1));
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_at_once_even_one_given_before_waiting() {
        let stop = CancellationToken::new();
        let waiting = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut backoff =
                    Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
                backoff.wait(&stop).await
            })
        };
        stop.cancel();
        let went_on = tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("a stop ends an hour's wait")
            .expect("the waiting task ends");
        assert!(!went_on);

        let mut already = Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
        assert!(!already.wait(&stop).await, "a stop given earlier is seen");
    }
}
