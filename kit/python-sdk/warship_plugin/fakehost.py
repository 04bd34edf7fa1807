"""A fake warship host for a strategy's unit tests: it runs the strategy's `next` the way
warship's host does, against scripted pods in simulated time.

It is a small mirror of the host's half of the contract (`crates/rollout/src/host.rs`)
and of its simulated cluster (`crates/rollout/src/sim.rs`). `warship plugin test` runs
the built component through the real host loop and is the authority; this is for the
seconds-long edit-test cycle in plain CPython.

What the strategy is told, and how its answers are carried out:

- `state.step_index` and `state.memory` are those of its last answer (0 and "" at the
  start); `time_in_step_ms` counts from when that step index last changed, and
  `promoted` is true once a user promoted the current step (it drops on a new index).
  `stable` and `candidate` carry the replicas asked for and the pods observed.
- `scale`, `switch-traffic` and `set-weight` act at once, then the host asks again.
  `wait-ready` waits until every workload is ready (with faulty pods the host asks again
  every simulated second, so the strategy can give up on its limits). `pause(ms)` lets
  that much time pass. `await-promotion` waits for the scripted promotion (none: the run
  ends as awaiting-promotion). `done` before the candidate is ready is a wait; once it is,
  traffic goes to the candidate and the stable release is removed. `abort(reason)`, a
  refusal, a deadline or a user's abort put the stable release back.
- Refusals (as the host): a scale above `max_replicas`, `set-weight` above 100, memory
  over 64 KiB, a description over 1 KiB, `done` while the candidate has no pods. The run
  ends as failed with the host's words.
- Stricter than the host, as the Rust simulator: an answer that would change nothing
  (a scale to the counts already there, `wait-ready` with every pod ready, `pause(0)`,
  ...) raises ContractError, for the host would ask again at once, for ever. So does an
  answer of the wrong shape (a negative or fractional count, a weight above 255, a
  non-str description), which would trap at the component's boundary.
- A host restart: the host goes down after persisting an answer and before carrying it
  out; a new host resumes with what was persisted (step index, memory, time in step,
  promotion, counts asked so far) and nothing else.
- `Err(message)` raised by `next` fails the rollout as the host does; any other
  exception propagates to the test (in the component it would trap, failing the rollout).

Pods: each simulated second every workload starts or stops one pod towards its
replicas. The candidate's pods follow `pods`: "healthy"; "slow-ready" (none gets ready
until its longest-unready pod has been unready `ready_after_seconds`, then one a second
as usual); "never-ready" (a readiness probe that always fails); "crash-loop" (never
ready, one more restart every second).

    host = FakeHost(app.Rollout, desired=4, stable=4, settings={"max-restarts": 2},
                    pods="crash-loop")
    end = host.run()                  # End(kind="aborted", reason="...")
    host.kinds()                      # ["scale", "wait-ready", ..., "abort"]
    host.min_serving                  # fewest pods serving requests during the run
"""

import copy
import json
from dataclasses import dataclass, field, replace
from typing import List, Optional

from warship_plugin.stand_ins import install_stand_ins

install_stand_ins()

from wit_world.imports import types as t  # noqa: E402
from componentize_py_types import Err  # noqa: E402

TICK_MS = 1_000
MAX_CALLS = 500
# A wait on healthy pods that lasts longer than this means a test broke the bookkeeping.
MAX_WAIT_TICKS = 100_000
MEMORY_MAX = 64 << 10
DESCRIPTION_MAX = 1 << 10
STABLE, CANDIDATE = 1, 2
PODS = ("healthy", "slow-ready", "never-ready", "crash-loop")
U8, U32, U64 = 2**8 - 1, 2**32 - 1, 2**64 - 1
RESTORED = "the previous release was restored"

_NAMES = {
    "Action_Scale": "scale", "Action_SwitchTraffic": "switch-traffic",
    "Action_SetWeight": "set-weight", "Action_WaitReady": "wait-ready", "Action_Pause": "pause",
    "Action_AwaitPromotion": "await-promotion", "Action_Done": "done", "Action_Abort": "abort",
}


class ContractError(AssertionError):
    """The strategy answered what the real host would spin on or the component's
    boundary would trap on; the message says what and shows the state."""


@dataclass
class End:
    """How a run ended: "done", "aborted" (the strategy or a user gave up, for `reason`),
    "failed" (the host refused an answer, the strategy raised Err, or the deadline
    passed; `reason` in the host's words) or "awaiting-promotion"."""

    kind: str
    reason: str = ""


@dataclass
class Pods:
    """One release's pods, as the script holds them."""

    replicas: int = 0
    ready: int = 0
    restarts: int = 0
    unready_ms: int = 0


@dataclass
class _Mark:
    index: int
    action: str
    description: str
    memory: str
    since_ms: int


@dataclass
class _Progress:
    """All the host persists of a rollout."""

    stable: Optional[int]
    candidate: int = CANDIDATE
    scale: tuple = (0, 0)
    traffic: t.Traffic = t.Traffic.STABLE
    weight: Optional[int] = None
    step: Optional[_Mark] = None
    promoted: bool = False


@dataclass
class _Cluster:
    releases: dict = field(default_factory=dict)
    traffic: Optional[t.Traffic] = None
    weight: Optional[int] = None
    exact_weights: bool = False
    pods: str = "healthy"
    ready_after_ms: int = 0

    def apply(self, change):
        kind, *args = change
        if kind == "candidate":
            self.releases.setdefault(CANDIDATE, Pods()).replicas = args[0]
        elif kind == "scale" and args[0] in self.releases:
            self.releases[args[0]].replicas = args[1]
        elif kind == "route":
            self.traffic, self.weight = args
        elif kind == "remove":
            self.releases.pop(args[0], None)

    def tick(self, ms):
        for revision, w in self.releases.items():
            faulty = revision == CANDIDATE and self.pods != "healthy"
            stuck = faulty and not (
                self.pods == "slow-ready" and w.unready_ms + ms >= self.ready_after_ms)
            if w.ready > w.replicas:
                w.ready -= 1
            elif w.ready < w.replicas and not stuck:
                w.ready += 1
            w.unready_ms = w.unready_ms + ms if w.ready < w.replicas else 0
            if faulty and self.pods == "crash-loop" and w.replicas > 0:
                w.restarts += 1

    def serving(self):
        """Pods that serve requests now: ready and not stopping, where traffic goes."""
        up = {r: min(p.ready, p.replicas) for r, p in self.releases.items()}
        stable, candidate = up.get(STABLE, 0), up.get(CANDIDATE, 0)
        if self.traffic == t.Traffic.STABLE:
            return stable
        if self.traffic == t.Traffic.CANDIDATE:
            return candidate
        if self.weight is not None and self.exact_weights and self.weight in (0, 100):
            return stable if self.weight == 0 else candidate
        return stable + candidate


def _short(value, limit=400):
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _all_ready(state):
    return all(w.ready == w.replicas for w in (state.stable, state.candidate) if w is not None)


class _HostRollout:
    """The host's half (host.rs `Rollout`): what the strategy is told, how its answer
    is checked, which changes carry it out, and the step bookkeeping."""

    def __init__(self, progress, desired, max_replicas, deadline_ms, plugin, now_ms):
        self.progress, self.desired = progress, desired
        self.max_replicas, self.deadline_ms, self.plugin = max_replicas, deadline_ms, plugin
        self.watching_since_ms = now_ms

    def begin(self, cluster):
        p = self.progress
        changes = [("remove", r) for r in cluster.releases if r not in (p.stable, p.candidate)]
        if p.step is None and p.stable is not None:
            p.scale = (cluster.releases[p.stable].replicas, p.scale[1])
        changes.append(_route(p, p.traffic, p.weight))
        return changes

    def state(self, cluster, now_ms):
        p, mark = self.progress, self.progress.step

        def workload(revision, replicas):
            seen = cluster.releases.get(revision, Pods())
            return t.Workload(replicas=replicas, ready=seen.ready, restarts=seen.restarts,
                              unready_ms=seen.unready_ms)

        return t.RolloutState(
            desired_replicas=self.desired,
            stable=workload(p.stable, p.scale[0]) if p.stable is not None else None,
            candidate=workload(p.candidate, p.scale[1]),
            traffic=p.traffic, weight=p.weight, exact_weights=cluster.exact_weights,
            step_index=mark.index if mark else 0,
            time_in_step_ms=max(now_ms - mark.since_ms, 0) if mark else 0,
            promoted=p.promoted, memory=mark.memory if mark else "",
        )

    def answer(self, step, state, now_ms):
        """(changes, then, progress after); `step` is a Step or Err."""
        if isinstance(step, Err):
            return [], ("fail", "refused", f"plugin {self.plugin} {step.value}"), self.progress
        refusal = self._refusal(step, state)
        if refusal:
            return [], ("fail", "refused", f"strategy {self.plugin} answered {refusal}"), self.progress
        previous = self.progress.step
        since = previous.since_ms if previous and previous.index == step.step_index else now_ms
        action = step.action
        self.progress.step = _Mark(step.step_index, _NAMES[type(action).__name__],
                                   step.description, step.memory, since)
        if previous and previous.index != step.step_index:
            self.progress.promoted = False
        in_step_ms = max(now_ms - max(since, self.watching_since_ms), 0)
        after = replace(self.progress)
        if isinstance(action, t.Action_Scale):
            to = action.value
            changes = [("candidate", to.candidate)]
            if after.stable is not None and to.stable != after.scale[0]:
                changes.append(("scale", after.stable, to.stable))
            after.scale = (to.stable if after.stable is not None else 0, to.candidate)
            return changes, ("ask-again",), after
        if isinstance(action, t.Action_SwitchTraffic):
            return [_route(after, action.value, None)], ("ask-again",), after
        if isinstance(action, t.Action_SetWeight):
            return [_route(after, t.Traffic.BOTH, action.value)], ("ask-again",), after
        if isinstance(action, t.Action_WaitReady):
            return [], self._wait(state, in_step_ms), after
        if isinstance(action, t.Action_Pause):
            return [], ("pause", action.value), after
        if isinstance(action, t.Action_AwaitPromotion):
            return [], ("await-promotion",), after
        if isinstance(action, t.Action_Done):
            if state.candidate.ready != state.candidate.replicas:
                return [], self._wait(state, in_step_ms), after
            changes = [_route(after, t.Traffic.CANDIDATE, None)]
            if after.stable is not None:
                changes.append(("remove", after.stable))
                after.scale = (0, after.scale[1])
            return changes, ("succeeded",), after
        return [], ("fail", "aborted", action.value), after

    def restore(self):
        p, changes = self.progress, []
        if p.stable is not None:
            changes.append(("scale", p.stable, self.desired))
            changes.append(_route(p, t.Traffic.STABLE, None))
            p.scale = (self.desired, p.scale[1])
        changes.append(("remove", p.candidate))
        p.scale = (p.scale[0], 0)
        return changes

    def _wait(self, state, in_step_ms):
        if self.deadline_ms is not None and in_step_ms > self.deadline_ms:
            c = state.candidate
            return ("fail", "deadline",
                    f"the rollout was not ready within the env's deadline of "
                    f"{self.deadline_ms // 1000}s: {c.ready} of {c.replicas} new pods ready; "
                    f"no pod said why")
        return ("ask-again",) if _all_ready(state) else ("wait-for-pods",)

    def _refusal(self, step, state):
        if len(step.memory.encode()) > MEMORY_MAX:
            return f"a memory of {len(step.memory.encode())} bytes, above the {MEMORY_MAX} allowed"
        if len(step.description.encode()) > DESCRIPTION_MAX:
            return (f"a description of {len(step.description.encode())} bytes, "
                    f"above the {DESCRIPTION_MAX} allowed")
        a = step.action
        if isinstance(a, t.Action_Scale) and max(a.value.stable, a.value.candidate) > self.max_replicas:
            return (f"scale to {a.value.stable} stable and {a.value.candidate} candidate pods, "
                    f"above the platform's maximum of {self.max_replicas} (deploys.max_replicas)")
        if isinstance(a, t.Action_SetWeight) and a.value > 100:
            return f"set-weight {a.value}, above 100 percent"
        if isinstance(a, t.Action_Done) and state.candidate.replicas == 0 and state.desired_replicas > 0:
            return "done while the candidate has no pods: the env would serve nothing"
        return None


def _route(p, traffic, weight):
    both = traffic == t.Traffic.BOTH and p.stable is not None
    p.traffic, p.weight = traffic, weight if both else None
    return ("route", p.traffic, p.weight)


def _check_shape(step):
    """What the component's boundary would refuse to lower: wrong types or ranges."""
    def whole(value, high):
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high

    if not isinstance(step, t.Step):
        return f"{_short(step)}, not a Step"
    problems = []
    if not whole(step.step_index, U32):
        problems.append(f"step_index {_short(step.step_index)} is not a u32 (a whole number 0 to {U32})")
    for key in ("description", "memory"):
        if not isinstance(getattr(step, key), str):
            problems.append(f"{key} {_short(getattr(step, key))} is not a str")
    a = step.action
    if type(a).__name__ not in _NAMES or not isinstance(a, getattr(t, type(a).__name__)):
        problems.append(f"action {_short(a)} is none of the Action_* cases")
    elif isinstance(a, t.Action_Scale):
        if not isinstance(a.value, t.ScaleTo):
            problems.append(f"scale's value {_short(a.value)} is not a ScaleTo")
        else:
            problems += [f"scale's {k} {_short(getattr(a.value, k))} is not a u32 (0 to {U32})"
                         for k in ("stable", "candidate") if not whole(getattr(a.value, k), U32)]
    elif isinstance(a, t.Action_SwitchTraffic) and not isinstance(a.value, t.Traffic):
        problems.append(f"switch-traffic's value {_short(a.value)} is not a Traffic")
    elif isinstance(a, t.Action_SetWeight) and not whole(a.value, U8):
        problems.append(f"set-weight's value {_short(a.value)} is not a u8 (0 to {U8})")
    elif isinstance(a, t.Action_Pause) and not whole(a.value, U64):
        problems.append(f"pause's value {_short(a.value)} is not a u64 (milliseconds, 0 to {U64})")
    elif isinstance(a, t.Action_Abort) and not isinstance(a.value, str):
        problems.append(f"abort's reason {_short(a.value)} is not a str")
    return "; ".join(problems)


def _noop(step, s):
    """Why the answer changes nothing, if it does not."""
    a = step.action
    if isinstance(a, t.Action_Scale):
        same = s.candidate.replicas == a.value.candidate and (
            s.stable is None or s.stable.replicas == a.value.stable)
        return "scaling to the current counts" if same else None
    if isinstance(a, t.Action_SwitchTraffic) and s.traffic == a.value:
        return "switching traffic to where it goes"
    if isinstance(a, t.Action_SetWeight) and s.weight == a.value:
        return "setting the weight it has"
    if isinstance(a, t.Action_WaitReady) and _all_ready(s):
        return "wait-ready with every pod ready"
    if isinstance(a, t.Action_Pause) and a.value == 0:
        return "a pause of 0 ms"
    if isinstance(a, t.Action_AwaitPromotion) and s.promoted:
        return "awaiting a promotion already given"
    return None


class FakeHost:
    """One rollout of `strategy` on scripted pods. `strategy` is the Rollout class of
    app.py (a fresh instance per call, as the host gives each call a fresh instance), an
    instance of it, or a function (settings, state) -> Step.

    `stable` is the pods of the serving release (None: as many as `desired`; 0: a first
    deploy). `settings` is JSON text or a dict. Times are in simulated seconds from the
    start: a user promotes a step `promote_after_seconds` after it began awaiting (None:
    nobody promotes), aborts the rollout at `abort_after_seconds`; the host restarts
    after persisting answer number `restart_host_after_calls`. `deadline_seconds`: how
    long a step may wait for pods (None: for ever)."""

    def __init__(self, strategy, *, desired=3, stable=None, settings="", exact_weights=False,
                 pods="healthy", ready_after_seconds=None, promote_after_seconds=None,
                 abort_after_seconds=None, restart_host_after_calls=None,
                 deadline_seconds=None, max_replicas=1000, name="under-test"):
        if pods not in PODS:
            raise ValueError(f"pods must be one of {', '.join(PODS)} (got {pods!r})")
        if (pods == "slow-ready") != (ready_after_seconds is not None):
            raise ValueError("ready_after_seconds goes with pods=\"slow-ready\", and only with it")
        stable = desired if stable is None else stable
        self.settings = settings if isinstance(settings, str) else json.dumps(settings)
        self._strategy = strategy
        self.cluster = _Cluster(exact_weights=exact_weights, pods=pods,
                                ready_after_ms=(ready_after_seconds or 0) * 1000)
        if stable:
            self.cluster.releases[STABLE] = Pods(replicas=stable, ready=stable)
        first = not stable
        self._progress = _Progress(stable=None if first else STABLE,
                                   traffic=t.Traffic.CANDIDATE if first else t.Traffic.STABLE)
        self._limits = (max_replicas, None if deadline_seconds is None else deadline_seconds * 1000)
        self.name, self.desired = name, desired
        self.now_ms = 0
        self.promote_after_ms = None if promote_after_seconds is None else promote_after_seconds * 1000
        self.abort_at_ms = None if abort_after_seconds is None else abort_after_seconds * 1000
        self.restart_after_calls = restart_host_after_calls
        self.steps: List = []
        self.history: List = []
        self.serving: List[int] = []
        self.host_restarts = 0
        self.end: Optional[End] = None
        self._new_host()

    # -- what a test reads ------------------------------------------------------------

    def kinds(self):
        """The answers' actions, as the WIT names them: "scale", "wait-ready", ..."""
        return [_NAMES[type(s.action).__name__] for s in self.steps]

    def scales(self):
        """(stable, candidate) of every scale answered."""
        return [(s.action.value.stable, s.action.value.candidate)
                for s in self.steps if isinstance(s.action, t.Action_Scale)]

    def weights(self):
        """The percent of every set-weight answered."""
        return [s.action.value for s in self.steps if isinstance(s.action, t.Action_SetWeight)]

    @property
    def min_serving(self):
        """The fewest pods that served requests, from the start to the end (the restore
        after an abort or a failure is the host's, and not counted)."""
        return min(self.serving)

    def counts(self):
        """((replicas, ready) of the stable release, (replicas, ready) of the candidate)."""
        pair = lambda p: (p.replicas, p.ready) if p else (0, 0)  # noqa: E731
        return pair(self.cluster.releases.get(STABLE)), pair(self.cluster.releases.get(CANDIDATE))

    def candidate_pods(self):
        """The candidate's Pods, for a test to break."""
        return self.cluster.releases.setdefault(CANDIDATE, Pods())

    def stable_pods(self):
        """The stable release's Pods (None on a first deploy)."""
        return self.cluster.releases.get(STABLE)

    # -- running ----------------------------------------------------------------------

    def run(self, max_calls=MAX_CALLS):
        """Asks and carries out answers until the rollout ends; returns the End."""
        while self.end is None:
            if len(self.steps) >= max_calls:
                raise ContractError(f"no end after {max_calls} calls ({self.now_ms // 1000} "
                                    f"simulated seconds); the last answers: {self.kinds()[-10:]}")
            self.call()
        return self.end

    def call(self):
        """Asks the strategy once and carries out its answer; the End, if it ended."""
        if self.end is not None:
            raise ContractError(f"the rollout has ended already: {self.end}")
        if self._user_aborts():
            return self._user_abort()
        state = self.rollout.state(self.cluster, self.now_ms)
        self.state = state
        try:
            # A copy: what the strategy does to its argument is no business of the host's.
            step = self._ask(copy.deepcopy(state))
        except Err as e:
            step = e
        if not isinstance(step, Err):
            problem = _check_shape(step)
            if problem:
                raise ContractError(f"next's answer would not cross the component's boundary: "
                                    f"{problem}\nstate: {_short(state)}")
            self.steps.append(step)
            noop = _noop(step, state)
            if noop:
                raise ContractError(f"{noop} does nothing, and the host would ask again at "
                                    f"once, for ever: {_short(step)}\nstate: {_short(state)}")
        changes, then, after = self.rollout.answer(step, state, self.now_ms)
        if not isinstance(step, Err) and len(self.steps) == self.restart_after_calls \
                and not self.host_restarts:
            # The answer is persisted; its changes are never made.
            self.restart_host()
            return None
        if then[0] == "fail":
            return self._fail(then[1], then[2])
        for change in changes:
            self.cluster.apply(change)
        self.rollout.progress = after
        if changes:
            self._observe()
        if then[0] == "succeeded":
            self.end = End("done")
        elif then[0] == "wait-for-pods":
            for _ in range(MAX_WAIT_TICKS):
                self._tick(TICK_MS)
                if _all_ready(self.state) or self.cluster.pods != "healthy" or self._user_aborts():
                    break
            else:
                raise ContractError(f"healthy pods never settled: {_short(self.state)}")
        elif then[0] == "pause":
            self.advance(then[1])
        elif then[0] == "await-promotion":
            if self.promote_after_ms is None and self.abort_at_ms is None:
                self.end = End("awaiting-promotion")
            elif self.promote_after_ms is None:
                self.advance(self.abort_at_ms - self.now_ms)
            else:
                self.advance(self.promote_after_ms)
                if not self._user_aborts() and self.rollout.progress.step is not None:
                    self.rollout.progress.promoted = True
        return self.end

    def restart_host(self):
        """The host goes down; a new one resumes from what was persisted."""
        self._progress = self.rollout.progress
        self.host_restarts += 1
        self._new_host()

    def advance(self, ms):
        """Lets `ms` pass a second at a time (pods keep moving), or until a user aborts."""
        left = ms
        while left > 0 and not self._user_aborts():
            dt = min(left, TICK_MS)
            self._tick(dt)
            left -= dt

    # -- inside -----------------------------------------------------------------------

    def _new_host(self):
        self.rollout = _HostRollout(self._progress, self.desired, *self._limits, self.name,
                                    self.now_ms)
        for change in self.rollout.begin(self.cluster):
            self.cluster.apply(change)
        self._observe()

    def _ask(self, state):
        s = self._strategy
        if isinstance(s, type):
            return s().next(self.settings, state)
        if hasattr(s, "next"):
            return s.next(self.settings, state)
        return s(self.settings, state)

    def _observe(self):
        self.state = self.rollout.state(self.cluster, self.now_ms)
        self.history.append(self.state)
        self.serving.append(self.cluster.serving())

    def _tick(self, ms):
        self.now_ms += ms
        self.cluster.tick(ms)
        self._observe()

    def _user_aborts(self):
        return self.abort_at_ms is not None and self.now_ms >= self.abort_at_ms

    def _user_abort(self):
        stable = self.rollout.progress.stable
        for change in self.rollout.restore():
            self.cluster.apply(change)
        now = f"release {stable} serves alone again" if stable is not None else \
            "the new release was removed"
        self.end = End("aborted", f"aborted by a user during the rollout; {now}")
        return self.end

    def _fail(self, kind, words):
        for change in self.rollout.restore():
            self.cluster.apply(change)
        self.end = End("aborted", words) if kind == "aborted" else End("failed", f"{words}; {RESTORED}")
        return self.end
