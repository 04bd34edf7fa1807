//! The sandbox: one wasmtime `Engine` per process, an epoch ticker for wall-clock
//! deadlines, components compiled once (cached on disk by content and wasmtime
//! version) and pre-instantiated, and a fresh `Store` for every call with a memory
//! cap and WASI linked to an empty context: no files, no environment, no network.
//! A guest's timers end at its call's deadline: waiting on one happens in host code,
//! where the epoch cannot reach it.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, StoreContextMut};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynPollable, Pollable};
use wasmtime_wasi::{HostMonotonicClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::PluginFailure;

/// How often the epoch advances: the granularity of every deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Plugin calls that can run at once by default; more wait for a slot (at most [`SLOT_WAIT`]).
pub const POOL_INSTANCES: u32 = 64;
/// How long a call waits for a free instance slot before it fails.
pub const SLOT_WAIT: Duration = Duration::from_secs(30);
/// The largest memory cap a plugin may have.
pub const MAX_MEMORY_BYTES: usize = 1 << 30;
/// What one call's component may hold. Guests made by componentize-py hold dozens of
/// core instances; each core module has at most one memory.
const CORE_INSTANCES_PER_CALL: u32 = 64;
const MEMORIES_PER_CALL: u32 = 16;
const TABLES_PER_CALL: u32 = 64;
/// Guest output kept per call (and logged); more is cut off.
const OUTPUT_CAP: usize = 64 * 1024;
/// Lines of a plugin's output logged, in a burst and then per second, across its calls;
/// the rest are counted in one line, so a chatty plugin cannot flood the host's log.
const LOG_LINES_BURST: f64 = 100.0;
const LOG_LINES_PER_SEC: f64 = 20.0;

/// The WASI version whose clock functions the runtime replaces (wasmtime-wasi's own;
/// guests importing any 0.2.x are linked to it).
const WASI_CLOCKS: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Per-call state of a store.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    /// The guest's monotonic clock starts here (see [`CallClock`]).
    clock_start: std::time::Instant,
    /// When the call's deadline passes.
    deadline: tokio::time::Instant,
}

/// The guest's monotonic clock: nanoseconds since its call began.
struct CallClock(std::time::Instant);

impl HostMonotonicClock for CallClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// A timer the guest waits on, ending at the call's deadline at the latest: a wait
/// happens in host code, where the epoch deadline cannot interrupt the guest.
struct CappedTimer(tokio::time::Instant);

#[async_trait::async_trait]
impl Pollable for CappedTimer {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.0).await
    }
}

/// `subscribe-duration` and `subscribe-instant` with their timers cut at the deadline.
fn link_capped_clock(linker: &mut Linker<CallState>) -> anyhow::Result<()> {
    fn timer(mut store: StoreContextMut<'_, CallState>, wait: Duration) -> wasmtime::Result<(Resource<DynPollable>,)> {
        let state = store.data_mut();
        let until = (tokio::time::Instant::now() + wait).min(state.deadline);
        let timer = state.table.push(CappedTimer(until))?;
        Ok((wasmtime_wasi::p2::subscribe(&mut state.table, timer)?,))
    }
    linker.allow_shadowing(true);
    let mut clock = linker.instance(WASI_CLOCKS)?;
    clock.func_wrap("subscribe-duration", |store: StoreContextMut<'_, CallState>, (nanos,): (u64,)| {
        timer(store, Duration::from_nanos(nanos))
    })?;
    clock.func_wrap("subscribe-instant", |store: StoreContextMut<'_, CallState>, (when,): (u64,)| {
        let now = store.data().clock_start.elapsed().as_nanos() as u64;
        timer(store, Duration::from_nanos(when.saturating_sub(now)))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Refuses growth past the cap and remembers that it did, so the failure can be
/// reported as what it is rather than as a generic trap. The cap is on all of a call's
/// linear memories together: a component may have many.
#[derive(Debug)]
struct MemoryCap {
    max_bytes: usize,
    /// Bytes of every memory of the call so far.
    total: usize,
    refused: Option<usize>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.total - current.min(self.total) + desired;
        if total > self.max_bytes {
            self.refused = Some(total);
            return Err(wasmtime::format_err!("memory cap of {} bytes reached", self.max_bytes));
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Limits for one plugin's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: usize,
    pub deadline: Duration,
}

#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: std::sync::Arc<Linker<CallState>>,
    cache_dir: Option<PathBuf>,
    slots: std::sync::Arc<Slots>,
    instances: u32,
}

/// Calls in flight, so the pool is never asked for more instances than it has: a call
/// beyond [`POOL_INSTANCES`] waits for one to end instead of failing.
#[derive(Default)]
struct Slots {
    busy: std::sync::Mutex<u32>,
    freed: std::sync::Condvar,
}

/// One call's hold on an instance slot, given back when dropped (after the call's store).
pub struct Slot(std::sync::Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.busy.lock().expect("slots lock") -= 1;
        self.0.freed.notify_one();
    }
}

/// How a component was obtained, for load-time figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    FromCache,
    Compiled,
}

impl Runtime {
    /// Builds the engine and starts its epoch ticker, which stops by itself once the
    /// engine is dropped. `cache_dir` holds precompiled components; `None` disables it.
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        Self::with_instances(cache_dir, POOL_INSTANCES)
    }

    /// The same with a pool of `instances` concurrent calls (tests use a small one).
    pub fn with_instances(cache_dir: Option<PathBuf>, instances: u32) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config.max_wasm_stack(1 << 20);
        // A fresh instance per call is cheap only with slots reserved up front:
        // memories come from a pool and are reset copy-on-write, not mapped anew.
        // Each total is a call's most times the calls at once: one guest holding all it
        // may must not make another's call fail for want of a pooled memory or table.
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            .total_core_instances(instances * CORE_INSTANCES_PER_CALL)
            .total_memories(instances * MEMORIES_PER_CALL)
            .total_tables(instances * TABLES_PER_CALL)
            .max_memories_per_component(MEMORIES_PER_CALL)
            .max_tables_per_component(TABLES_PER_CALL)
            .max_core_instances_per_component(CORE_INSTANCES_PER_CALL)
            .max_memory_size(MAX_MEMORY_BYTES)
            .table_elements(100_000);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let weak = engine.weak();
        std::thread::Builder::new().name("wasm-epoch".into()).spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })?;

        let mut linker = Linker::new(&engine);
        // Guests built with Rust std, componentize-py or jco import WASI even for a
        // pure world; the context behind it grants nothing.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        link_capped_clock(&mut linker)?;
        Ok(Self { engine, linker: std::sync::Arc::new(linker), cache_dir, slots: Default::default(), instances })
    }

    /// Waits for a free instance slot, at most [`SLOT_WAIT`]; `None` if none came free.
    pub fn slot(&self) -> Option<Slot> {
        let busy = self.slots.busy.lock().expect("slots lock");
        let (mut busy, _) =
            self.slots.freed.wait_timeout_while(busy, SLOT_WAIT, |busy| *busy >= self.instances).expect("slots lock");
        if *busy >= self.instances {
            return None;
        }
        *busy += 1;
        Some(Slot(self.slots.clone()))
    }

    /// Plugin calls that can run at once.
    pub fn instances(&self) -> u32 {
        self.instances
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn linker(&self) -> &Linker<CallState> {
        &self.linker
    }

    /// Compiles `bytes`, or loads the precompiled artifact cached under their sha256,
    /// the wasmtime version and the engine's settings.
    pub fn component(&self, bytes: &[u8], sha256: &str) -> anyhow::Result<(Component, Loaded)> {
        let cached = self.cache_path(sha256);
        if let Some(path) = cached.as_deref().filter(|p| p.is_file()) {
            // Read, not mapped: a cache file truncated under a mapping would kill the
            // process with SIGBUS.
            let artifact = std::fs::read(path)?;
            // SAFETY: the file was written by `Component::serialize` of this very
            // engine configuration (the path encodes it) into warship's own cache,
            // and wasmtime checks its header and version before using it.
            match unsafe { Component::deserialize(&self.engine, &artifact) } {
                Ok(component) => return Ok((component, Loaded::FromCache)),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "ignoring unusable precompiled plugin"),
            }
        }
        let component = Component::new(&self.engine, bytes)?;
        if let Some(path) = cached {
            if let Err(e) = write_atomically(&path, &component.serialize()?) {
                tracing::warn!(path = %path.display(), error = %e, "could not cache the precompiled plugin");
            }
        }
        Ok((component, Loaded::Compiled))
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("wasmtime-{}-{:016x}", wasmtime_version(), hasher.finish());
        Some(dir.join(engine_key).join(format!("{sha256}.cwasm")))
    }

    /// A fresh store for one call: empty WASI, memory cap, deadline.
    pub fn store(&self, limits: Limits) -> (Store<CallState>, Output) {
        let output = Output { stdout: MemoryOutputPipe::new(OUTPUT_CAP), stderr: MemoryOutputPipe::new(OUTPUT_CAP) };
        // Denied explicitly (wasmtime-wasi's defaults today): a socket is refused before any
        // descriptor is opened. Clocks and random stay; no files, no environment.
        let clock_start = std::time::Instant::now();
        let wasi = WasiCtxBuilder::new()
            .monotonic_clock(CallClock(clock_start))
            .stdout(output.stdout.clone())
            .stderr(output.stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = CallState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap { max_bytes: limits.memory_bytes, total: 0, refused: None },
            clock_start,
            deadline: tokio::time::Instant::from_std(clock_start + limits.deadline),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        let ticks = limits.deadline.as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        (store, output)
    }
}

/// What a guest printed during one call.
pub struct Output {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Output {
    /// Sends what the guest printed to the host's log under the plugin's name, as far as
    /// its `budget` of lines lasts; says how many lines it left out.
    pub fn log(&self, plugin: &str, budget: &mut LineBudget) {
        let now = std::time::Instant::now();
        let mut left_out = 0usize;
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.trim().is_empty()) {
                match budget.take(now) {
                    true => tracing::info!(target: "warship::plugin_output", plugin, stream, "{line}"),
                    false => left_out += 1,
                }
            }
        }
        if left_out > 0 {
            tracing::warn!(target: "warship::plugin_output", plugin, left_out, "plugin output past {LOG_LINES_PER_SEC} lines a second was not logged");
        }
    }
}

/// A token bucket of log lines.
#[derive(Debug)]
pub struct LineBudget {
    tokens: f64,
    at: std::time::Instant,
}

impl LineBudget {
    pub fn new(now: std::time::Instant) -> Self {
        Self { tokens: LOG_LINES_BURST, at: now }
    }

    /// Whether one more line may be logged at `now`.
    fn take(&mut self, now: std::time::Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * LOG_LINES_PER_SEC;
        self.tokens = (self.tokens + refill).min(LOG_LINES_BURST);
        self.at = self.at.max(now);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Whether the call's deadline has passed: an answer given after it (a guest that
/// waited on a timer until the deadline, then returned) is not taken.
pub fn past_deadline(store: &Store<CallState>) -> bool {
    tokio::time::Instant::now() > store.data().deadline
}

/// Turns a failed call into what happened, in words.
pub fn classify(store: &Store<CallState>, error: wasmtime::Error, limits: Limits) -> PluginFailure {
    if let Some(desired) = store.data().limiter.refused {
        return PluginFailure::MemoryExceeded { cap: limits.memory_bytes, wanted: desired };
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => PluginFailure::DeadlineExceeded { deadline: limits.deadline },
        Some(trap) => PluginFailure::Trapped(trap.to_string()),
        // Anything else failed while lifting its answer: out-of-bounds pointers,
        // invalid UTF-8, a bad discriminant.
        None => PluginFailure::InvalidAnswer(format!("{error:#}")),
    }
}

pub fn wasmtime_version() -> &'static str {
    // The crate's own version string, as cargo resolved it.
    env!("WASMTIME_VERSION")
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugins_log_lines_are_a_burst_then_a_rate() {
        let start = std::time::Instant::now();
        let mut budget = LineBudget::new(start);
        let logged = (0..1_000).filter(|_| budget.take(start)).count();
        assert_eq!(logged, LOG_LINES_BURST as usize, "a burst, then nothing at the same instant");
        let later = start + Duration::from_secs(2);
        let logged = (0..1_000).filter(|_| budget.take(later)).count();
        assert_eq!(logged, 2 * LOG_LINES_PER_SEC as usize, "then the rate");
        // A long quiet spell refills no more than the burst.
        let much_later = later + Duration::from_secs(3_600);
        assert_eq!((0..1_000).filter(|_| budget.take(much_later)).count(), LOG_LINES_BURST as usize);
    }

    #[test]
    fn the_memory_cap_counts_every_memory_of_a_call_together() {
        let mut cap = MemoryCap { max_bytes: 16 << 20, total: 0, refused: None };
        // Sixteen memories of 1 MiB each fit a 16 MiB cap exactly...
        for _ in 0..16 {
            assert!(cap.memory_growing(0, 1 << 20, None).unwrap());
        }
        // ...and any further growth of any of them is refused, naming the total it wanted.
        assert!(cap.memory_growing(1 << 20, 2 << 20, None).is_err());
        assert_eq!(cap.refused, Some(17 << 20));
        // Growth of one memory counts only what it adds.
        let mut cap = MemoryCap { max_bytes: 4 << 20, total: 0, refused: None };
        assert!(cap.memory_growing(0, 1 << 20, None).unwrap());
        assert!(cap.memory_growing(1 << 20, 4 << 20, None).unwrap());
        assert!(cap.memory_growing(0, 1, None).is_err());
    }
}
