# Frozen: this strategy was built against contract 0.1.0 (wit/0.1.0) before the kit
# existed, and stays so the host's 0.1.0 adapter is tested against a real component.
# scripts/test builds it into target/plugins/strategy-linear-py-0.1.0.wasm.
"""strategy-linear-py: an example warship strategy plugin written in Python.

It moves a release from the stable workload to the candidate workload in N equal
steps, with a pause between steps. Each step starts its new pods, and waits for
them, before it stops old ones, so capacity never dips. It gives up when the new
pods restart more than 3 times in all or one stays unready over 5 minutes. Build
it into a WebAssembly component with `./build` (componentize-py), unit-test it
with `python3 -m unittest`.

The contract is `wit/0.1.0/plugin.wit`, world `strategy`. The host calls `next` over and
over: each call gets the settings and what the host observes now, and answers ONE
action to perform now, plus the step it belongs to. The host persists the step
index and `memory`, applies the action, and calls again. `time_in_step_ms` starts
again from 0 whenever the answered step index differs from the previous one. The
plugin has no clock, no files and no memory between calls: everything it knows
is in its arguments.

The file has two parts:
  * plain functions (`parse_settings`, `next_step`, ...) holding all the logic,
    testable with CPython and stand-ins for the generated types (test_app.py);
  * the glue: classes `Plugin` and `Rollout`, named after the WIT interfaces
    the `strategy` world exports, as componentize-py's generated bindings require.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

NAME = "strategy-linear-py"
VERSION = "0.1.0"

# The candidate's pods may restart this many times in total; one more aborts.
MAX_RESTARTS = 3

# A candidate pod may stay unready this long (5 minutes); any longer aborts.
MAX_UNREADY_MS = 300_000

# Settings: key -> (default, minimum, maximum). The maximums keep every number we
# hand back within the WIT's u32 / u64 fields.
SETTINGS = {
    "steps": (4, 1, 100),
    "pause-seconds": (30, 0, 86400),
}

SETTINGS_SCHEMA = json.dumps(
    {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "steps": {
                "description": "How many equal steps move the replicas to the new release.",
                "type": "integer",
                "minimum": SETTINGS["steps"][1],
                "maximum": SETTINGS["steps"][2],
                "default": SETTINGS["steps"][0],
            },
            "pause-seconds": {
                "description": "Least time each step lasts (but the last), in seconds.",
                "type": "integer",
                "minimum": SETTINGS["pause-seconds"][1],
                "maximum": SETTINGS["pause-seconds"][2],
                "default": SETTINGS["pause-seconds"][0],
            },
        },
    },
    separators=(",", ":"),
)


# ---------------------------------------------------------------------------
# Pure logic: plain functions of their arguments.
# ---------------------------------------------------------------------------


class SettingsError(ValueError):
    """Bad settings; the message names the key and says what is expected."""


class Settings:
    def __init__(self, steps, pause_seconds):
        self.steps = steps
        self.pause_seconds = pause_seconds

    def __eq__(self, other):
        return isinstance(other, Settings) and vars(self) == vars(other)

    def __repr__(self):
        return f"Settings(steps={self.steps}, pause_seconds={self.pause_seconds})"


def parse_settings(text):
    """The settings JSON from platform.toml; "" or "{}" means every default."""
    if not text.strip():
        data = {}
    else:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise SettingsError(f"settings are not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise SettingsError("settings must be a JSON object, like {\"steps\": 4}")
    for key in data:
        if key not in SETTINGS:
            known = ", ".join(SETTINGS)
            raise SettingsError(f"unknown setting `{key}` (known: {known})")
    values = {}
    for key, (default, low, high) in SETTINGS.items():
        value = data.get(key, default)
        # bool is an int in Python; `true` is not a number of steps.
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise SettingsError(
                f"`{key}` must be a whole number from {low} to {high} (got {json.dumps(value)})"
            )
        values[key] = value
    return Settings(steps=values["steps"], pause_seconds=values["pause-seconds"])


def candidate_replicas(desired, k, steps):
    """Candidate replicas at step k of `steps`: ceil(desired * k / steps)."""
    return (desired * k + steps - 1) // steps


def _pods(n):
    return f"{n} pod" if n == 1 else f"{n} pods"


def _step(action, index, description):
    # This strategy keeps nothing between calls: all it needs is in the state.
    return types.Step(action=action, step_index=index, description=description, memory="")


def _unsettled(w):
    # Pods still starting, or (ready above replicas) still stopping.
    return abs(w.replicas - w.ready)


def _abort(state, why, description):
    back = "going back to the old release" if state.stable is not None else "stopping the deploy"
    return _step(types.Action_Abort(f"{why}; {back}"), max(state.step_index, 1), description)


def next_step(settings, state):
    """The action to perform now, from the settings and the observed state alone."""
    desired = state.desired_replicas
    cand = state.candidate
    stable = state.stable

    if cand.restarts > MAX_RESTARTS:
        return _abort(
            state,
            f"the new release keeps crashing: its pods restarted {cand.restarts} times "
            f"(at most {MAX_RESTARTS} allowed)",
            f"aborted after {cand.restarts} restarts of the new release",
        )
    if cand.unready_ms > MAX_UNREADY_MS:
        return _abort(
            state,
            f"the new release does not get ready: a pod has been unready for "
            f"{cand.unready_ms // 1000} s (at most {MAX_UNREADY_MS // 1000} s allowed)",
            f"aborted after a pod of the new release stayed unready for {cand.unready_ms // 1000} s",
        )

    if stable is None:
        return _first_deploy(state)

    steps = settings.steps
    k = min(max(state.step_index, 1), steps)
    while True:
        # time_in_step_ms belongs to the step the host reported; a step we move
        # to in this call starts from 0.
        elapsed = state.time_in_step_ms if k == state.step_index else 0
        want_cand = candidate_replicas(desired, k, steps)
        want_stable = desired - want_cand
        where = f"step {k} of {steps}: {want_cand} of {desired} replicas on the new release"

        if state.traffic != types.Traffic.BOTH:
            # The Service must reach both releases while replicas move, or the old
            # release scaling down would leave users with fewer (or no) pods.
            return _step(
                types.Action_SwitchTraffic(types.Traffic.BOTH),
                k,
                f"{where}; sending traffic to both releases",
            )
        # Each step moves replicas in two phases, so capacity never dips: first the
        # new pods start beside the old release as it is; once every pod is ready,
        # the old release goes down to the rest. Which phase we are in follows from
        # the observed counts alone, so a restarted host carries on where it was.
        if cand.replicas != want_cand:
            return _step(
                types.Action_Scale(types.ScaleTo(stable=stable.replicas, candidate=want_cand)),
                k,
                f"{where}; starting new pods: scaling to {want_cand} new and {stable.replicas} old",
            )
        waiting = _unsettled(stable) + _unsettled(cand)
        if waiting:
            return _step(types.Action_WaitReady(), k, f"{where}; waiting for {_pods(waiting)}")
        if stable.replicas != want_stable:
            return _step(
                types.Action_Scale(types.ScaleTo(stable=want_stable, candidate=want_cand)),
                k,
                f"{where}; new pods ready, scaling to {want_cand} new and {want_stable} old",
            )
        if k == steps:
            return _step(
                types.Action_Done(),
                k,
                f"all {desired} replicas on the new release after {steps} "
                + ("step" if steps == 1 else "steps"),
            )
        remaining = settings.pause_seconds * 1000 - elapsed
        if remaining > 0:
            return _step(
                types.Action_Pause(remaining),
                k,
                f"{where}; next step in {(remaining + 999) // 1000} s",
            )
        k += 1


def _first_deploy(state):
    desired = state.desired_replicas
    cand = state.candidate
    if cand.replicas != desired:
        return _step(
            types.Action_Scale(types.ScaleTo(stable=0, candidate=desired)),
            1,
            f"first deploy: starting {_pods(desired)}",
        )
    if cand.ready != cand.replicas:
        return _step(
            types.Action_WaitReady(),
            1,
            f"first deploy: {cand.ready} of {_pods(desired)} ready",
        )
    return _step(types.Action_Done(), 1, f"first deploy: all {_pods(desired)} ready")


# ---------------------------------------------------------------------------
# Component glue: one class per exported interface, named as the bindings require
# (`componentize-py -d wit -w strategy bindings DIR` shows them). An error result
# is returned by raising componentize_py_types.Err with the message.
# ---------------------------------------------------------------------------


class Plugin(exports.Plugin):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(name=NAME, version=VERSION, settings_schema=SETTINGS_SCHEMA)

    def check_config(self, settings: str) -> None:
        try:
            parse_settings(settings)
        except SettingsError as e:
            raise Err(str(e))


class Rollout(exports.Rollout):
    def next(self, settings: str, state: types.RolloutState) -> types.Step:
        try:
            parsed = parse_settings(settings)
        except SettingsError as e:
            raise Err(str(e))
        return next_step(parsed, state)
