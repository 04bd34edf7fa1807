//! The threads uploads block on, apart from tokio's shared blocking pool: slow uploads
//! hold these and only these, so the embedded store, plugin calls and everything else
//! that blocks keep theirs however many uploads trickle in.

use std::future::Future;

pub struct UploadPool {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl UploadPool {
    /// A pool of at most `threads` blocking threads (more calls wait for one).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(threads.max(1))
            .thread_name("warship-upload")
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Runs `f` on one of the pool's threads; the handle can be awaited from any runtime.
    pub fn run<F, R>(&self, f: F) -> impl Future<Output = Result<R, tokio::task::JoinError>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.runtime
            .as_ref()
            .expect("the upload pool lives as long as its owner")
            .spawn_blocking(f)
    }
}

impl Drop for UploadPool {
    fn drop(&mut self) {
        // Dropped from async code at shutdown: don't wait for threads here.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::UploadPool;
    use std::time::{Duration, Instant};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_upload_pool_leaves_tokios_blocking_pool_free() {
        let pool = UploadPool::new(4).unwrap();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = std::sync::Arc::new(std::sync::Mutex::new(held));
        let holders: Vec<_> = (0..8)
            .map(|_| {
                let held = held.clone();
                pool.run(move || {
                    let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(5));
                })
            })
            .collect();
        let started = Instant::now();
        tokio::task::spawn_blocking(|| ()).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        // The pool's own ninth call waits for one of its four threads.
        let queued = pool.run(Instant::now);
        let released = Instant::now();
        for _ in 0..8 {
            release.send(()).unwrap();
        }
        for holder in holders {
            holder.await.unwrap();
        }
        assert!(queued.await.unwrap() >= released, "the ninth call ran before any of the four threads was freed");
    }
}
