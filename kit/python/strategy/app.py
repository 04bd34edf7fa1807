"""{{name}}: a warship rollout strategy in Python.

It starts the whole new release beside the old one, waits until every new pod is
ready, and says done: the host then sends all traffic to the new release and removes
the old one. Users keep being served by the old release meanwhile. It gives up (the
host then restores the old release) when the new pods restart too often or one stays
unready too long.

The contract is the `strategy` world of `wit/plugin.wit`. The host calls `next` over and
over with the settings and what it observes now (`RolloutState`); each answer is ONE
action to carry out now (`Step`), plus the step it belongs to and `memory` to get back
next time. The plugin has no clock, files, network or memory between calls: everything
it knows is in its arguments.

`next_step` holds the logic as a plain function; `Plugin` and `Rollout` are the glue,
named after the WIT interfaces the world exports, as componentize-py requires.
"""

from wit_world import exports
from wit_world.imports import types

from warship_plugin.settings import SettingsSchema

NAME = "{{name}}"
VERSION = "0.1.0"

SETTINGS = SettingsSchema({
    "max-restarts": {
        "type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 3,
        "description": "abort when the new pods restarted more often than this, in sum",
    },
    "max-unready-seconds": {
        "type": "integer", "minimum": 1, "maximum": 86_400, "default": 300,
        "description": "abort when a new pod stays unready longer than this",
    },
})


def _pods(n):
    return f"{n} pod" if n == 1 else f"{n} pods"


def _step(action, description):
    # One step, and nothing to remember: the observed state says where the rollout is.
    return types.Step(action=action, step_index=1, description=description, memory="")


def next_step(settings, state):
    """The action to carry out now, from the settings and the observed state alone."""
    new, old = state.candidate, state.stable
    back = "going back to the old release" if old is not None else "stopping the deploy"
    if new.restarts > settings.max_restarts:
        return _step(
            types.Action_Abort(
                f"the new pods restarted {new.restarts} times (at most {settings.max_restarts}); {back}"),
            f"aborted after {new.restarts} restarts of the new pods",
        )
    if new.unready_ms > settings.max_unready_seconds * 1000:
        seconds = new.unready_ms // 1000
        return _step(
            types.Action_Abort(
                f"a new pod stayed unready for {seconds} s (at most {settings.max_unready_seconds} s); {back}"),
            f"aborted after a new pod stayed unready for {seconds} s",
        )

    desired = state.desired_replicas
    if new.replicas != desired:
        # The old release keeps its pods (and all traffic) until the new one is ready.
        serving = old.replicas if old is not None else 0
        return _step(
            types.Action_Scale(types.ScaleTo(stable=serving, candidate=desired)),
            f"starting {_pods(desired)} of the new release",
        )
    waiting = sum(abs(w.replicas - w.ready) for w in (old, new) if w is not None)
    if waiting:
        return _step(types.Action_WaitReady(), f"{new.ready} of {_pods(desired)} ready")
    return _step(types.Action_Done(), f"all {_pods(desired)} of the new release ready")


# The glue. An error result is an exception, componentize_py_types.Err(message);
# SETTINGS.parse_or_err raises it naming the bad key.


class Plugin(exports.Plugin):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(name=NAME, version=VERSION, settings_schema=SETTINGS.schema_json())

    def check_config(self, settings: str) -> None:
        SETTINGS.parse_or_err(settings)


class Rollout(exports.Rollout):
    def next(self, settings: str, state: types.RolloutState) -> types.Step:
        return next_step(SETTINGS.parse_or_err(settings), state)
