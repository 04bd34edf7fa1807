//! An append-only log of a job's events that any number of watchers can follow: each
//! gets everything from the start (so a late client misses nothing), then live events
//! until the log is closed.

use std::sync::{Arc, Mutex};

use futures_util::Stream;
use tokio::sync::Notify;

pub struct EventLog<T> {
    state: Mutex<State<T>>,
    changed: Notify,
}

struct State<T> {
    events: Vec<T>,
    closed: bool,
}

impl<T: Clone + Send + 'static> EventLog<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(State { events: Vec::new(), closed: false }), changed: Notify::new() })
    }

    pub fn push(&self, event: T) {
        let mut state = self.state.lock().expect("event log lock");
        if !state.closed {
            state.events.push(event);
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// No more events; watchers end after the last one.
    pub fn close(&self) {
        self.state.lock().expect("event log lock").closed = true;
        self.changed.notify_waiters();
    }

    /// Every event so far, then each new one, ending when the log closes.
    pub fn follow(self: &Arc<Self>) -> impl Stream<Item = T> + Send + 'static {
        futures_util::stream::unfold((self.clone(), 0usize), |(log, next)| async move {
            loop {
                // Register for a wake-up before looking, so an event pushed between the
                // look and the wait is not missed.
                let notified = log.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let state = log.state.lock().expect("event log lock");
                    if let Some(event) = state.events.get(next) {
                        return Some((event.clone(), (log.clone(), next + 1)));
                    }
                    if state.closed {
                        return None;
                    }
                }
                notified.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn watchers_get_the_past_then_the_present_until_the_log_closes() {
        let log = EventLog::new();
        log.push(1);
        log.push(2);
        let watching = tokio::spawn(log.follow().collect::<Vec<i32>>());
        for n in 3..=5 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            log.push(n);
        }
        log.close();
        assert_eq!(watching.await.unwrap(), vec![1, 2, 3, 4, 5], "the past, then each new event, then the end");
        assert_eq!(log.follow().collect::<Vec<_>>().await, vec![1, 2, 3, 4, 5], "a closed log replays and ends");
        log.push(6);
        assert_eq!(log.follow().count().await, 5, "nothing is added after close");
    }
}
