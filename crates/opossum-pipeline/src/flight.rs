//! Single flight: identical concurrent calls run once and share the result. The pipeline
//! merges misses of one key in a process with it, and the HTTP origin merges requests before
//! they take a computation permit.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Calls in flight by key; see the module documentation.
pub struct SingleFlight<T> {
    flights: Mutex<HashMap<String, Arc<OnceCell<T>>>>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> SingleFlight<T> {
        SingleFlight {
            flights: Mutex::default(),
        }
    }
}

impl<T: Clone> SingleFlight<T> {
    /// Runs `work` for `key` unless a call for `key` is already running, whose result is then
    /// shared; says whether this caller led (ran `work`). The finished flight leaves the map,
    /// so a later call (after an eviction, say) runs anew.
    pub async fn run<F: Future<Output = T>>(
        &self,
        key: &str,
        work: impl FnOnce() -> F,
    ) -> (T, bool) {
        let cell = {
            // A panic while holding the lock leaves a map that is still one.
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            flights.entry(key.to_string()).or_default().clone()
        };
        let mut led = false;
        let result = cell
            .get_or_init(|| {
                led = true;
                work()
            })
            .await
            .clone();
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights.get(key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            flights.remove(key);
        }
        (result, led)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identical_calls_run_once_and_a_later_one_runs_again() {
        let flight = Arc::new(SingleFlight::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (flight, runs) = (flight.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                flight
                    .run("k", || async move {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        runs.fetch_add(1, Ordering::SeqCst) + 1
                    })
                    .await
            }));
        }
        let mut leaders = 0;
        for task in tasks {
            let (value, led) = task.await.unwrap();
            assert_eq!(value, 1);
            leaders += usize::from(led);
        }
        assert_eq!((runs.load(Ordering::SeqCst), leaders), (1, 1));
        let (again, led) = flight.run("k", || async { 7 }).await;
        assert_eq!((again, led), (7, true));
    }
}
