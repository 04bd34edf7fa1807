//! How many uploads run at once, on this host and per user. An upload holds a writer
//! thread of the blocking pool for as long as its client sends, so without a cap slow
//! clients could fill the pool the store and plugin calls also use. Past a cap the
//! answer is 429 at once, with when to try again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::users::UserName;

/// Which cap an upload met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The host runs as many uploads as it takes.
    Host { max: usize },
    /// This user runs as many as one user may.
    User { max: usize },
}

pub struct Slots {
    host: Arc<Semaphore>,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
    host_max: usize,
    per_user_max: usize,
}

/// One running upload; its place is freed when dropped.
pub struct Slot {
    per_user: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
    _host: OwnedSemaphorePermit,
}

impl Slots {
    pub fn new(host_max: usize, per_user_max: usize) -> Self {
        Self { host: Arc::new(Semaphore::new(host_max)), per_user: Arc::default(), host_max, per_user_max }
    }

    /// A place for one more upload of `user`, or the cap it would pass.
    pub fn take(&self, user: &UserName) -> Result<Slot, Busy> {
        let mut per_user = self.per_user.lock().expect("upload slots lock");
        let running = per_user.get(user.as_str()).copied().unwrap_or(0);
        if running >= self.per_user_max {
            return Err(Busy::User { max: self.per_user_max });
        }
        let host = self.host.clone().try_acquire_owned().map_err(|_| Busy::Host { max: self.host_max })?;
        per_user.insert(user.as_str().to_owned(), running + 1);
        Ok(Slot { per_user: self.per_user.clone(), user: user.as_str().to_owned(), _host: host })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_user = self.per_user.lock().expect("upload slots lock");
        if let Some(running) = per_user.get_mut(&self.user) {
            *running -= 1;
            if *running == 0 {
                per_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_user_then_per_host_and_frees_on_drop() {
        let slots = Slots::new(3, 2);
        let (alice, bob) = (UserName::parse("alice").unwrap(), UserName::parse("bob").unwrap());
        let a1 = slots.take(&alice).unwrap();
        let _a2 = slots.take(&alice).unwrap();
        assert_eq!(slots.take(&alice).err(), Some(Busy::User { max: 2 }));
        let _b1 = slots.take(&bob).unwrap();
        assert_eq!(slots.take(&bob).err(), Some(Busy::Host { max: 3 }));
        drop(a1);
        assert!(slots.take(&bob).is_ok(), "a freed place is taken again");
    }
}
