//! Waiting and working side by side: a condition polled until a deadline,
//! `n` jobs on `n` threads, and a queue of work drained by a pool of workers.
//!
//! These are the harness's only ways of waiting for something and of running
//! things at once, shared by the checks, the cases, the probe and the model.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often [`poll_until`] looks again.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Runs `f` on `n` threads at once and collects the results in order.
pub fn in_parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (0..n).map(|i| scope.spawn(move || f(i))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Works through `items` on at most `workers` threads, each taking the next
/// item as it finishes one, in order. `worker` runs once per thread and
/// builds that thread's state (a server instance of its own, say); `work`
/// gets the state and one item. A thread stops taking items once `stop`
/// says so.
pub fn work_through<T: Send, S>(
    items: impl IntoIterator<Item = T>,
    workers: usize,
    stop: &(dyn Fn() -> bool + Sync),
    worker: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, T) + Sync,
) {
    let queue: Mutex<VecDeque<T>> = Mutex::new(items.into_iter().collect());
    let count = queue.lock().map(|q| q.len()).unwrap_or(0);
    let (worker, work, queue) = (&worker, &work, &queue);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1).min(count) {
            scope.spawn(move || {
                let mut state = worker();
                loop {
                    if stop() {
                        return;
                    }
                    // A worker that panicked poisons nothing the others need.
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                    let Some(item) = next else { return };
                    work(&mut state, item);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn poll_until_sees_a_condition_that_becomes_true() {
        let mut calls = 0;
        assert!(poll_until(Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        }));
        assert!(!poll_until(Duration::ZERO, || false));
    }

    #[test]
    fn in_parallel_keeps_the_order() {
        assert_eq!(in_parallel(4, |i| i * 10), [0, 10, 20, 30]);
    }

    #[test]
    fn work_through_does_every_item_once_on_each_workers_own_state() {
        let done = Mutex::new(Vec::new());
        let states = AtomicUsize::new(0);
        work_through(
            0..50,
            4,
            &|| false,
            || states.fetch_add(1, Ordering::SeqCst),
            |_, item| done.lock().unwrap().push(item),
        );
        let mut done = done.into_inner().unwrap();
        done.sort();
        assert_eq!(done, (0..50).collect::<Vec<_>>());
        assert!((1..=4).contains(&states.load(Ordering::SeqCst)));
    }

    #[test]
    fn work_through_stops_taking_items_when_told() {
        let done = AtomicUsize::new(0);
        work_through(
            0..50,
            2,
            &|| done.load(Ordering::SeqCst) >= 5,
            || (),
            |_, _| {
                done.fetch_add(1, Ordering::SeqCst);
            },
        );
        // Each worker may finish the item it took when the count reached 5.
        assert!(done.load(Ordering::SeqCst) < 8);
    }
}
