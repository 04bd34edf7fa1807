"""Unit tests for app.py, run with plain CPython: `python3 -m unittest -v`.

app.py imports the bindings componentize-py generates (`wit_world`,
`componentize_py_types`). Without them on the path, this file installs small
stand-ins with the same names and fields first. To run against the real generated
types instead:

    componentize-py -d ../../wit/0.1.0 -w strategy bindings /tmp/bindings
    PYTHONPATH=/tmp/bindings python3 -m unittest -v
"""

import json
import sys
import unittest
from dataclasses import dataclass
from enum import Enum
from types import ModuleType
from typing import Optional, Union


def _install_stand_ins():
    """Stand-ins for the generated modules, as far as app.py uses them."""

    class Err(Exception):
        def __init__(self, value):
            super().__init__(value)
            self.value = value

    @dataclass
    class PluginInfo:
        name: str
        version: str
        settings_schema: str

    @dataclass
    class Workload:
        replicas: int
        ready: int
        restarts: int
        unready_ms: int

    class Traffic(Enum):
        STABLE = 0
        CANDIDATE = 1
        BOTH = 2

    @dataclass
    class RolloutState:
        desired_replicas: int
        stable: Optional[Workload]
        candidate: Workload
        traffic: Traffic
        step_index: int
        time_in_step_ms: int
        promoted: bool
        memory: str

    @dataclass
    class ScaleTo:
        stable: int
        candidate: int

    @dataclass
    class Action_Scale:
        value: ScaleTo

    @dataclass
    class Action_SwitchTraffic:
        value: Traffic

    @dataclass
    class Action_WaitReady:
        pass

    @dataclass
    class Action_Pause:
        value: int

    @dataclass
    class Action_AwaitPromotion:
        pass

    @dataclass
    class Action_Done:
        pass

    @dataclass
    class Action_Abort:
        value: str

    @dataclass
    class Step:
        action: Union[Action_Scale, Action_SwitchTraffic, Action_WaitReady, Action_Pause,
                      Action_AwaitPromotion, Action_Done, Action_Abort]
        step_index: int
        description: str
        memory: str

    types = ModuleType("wit_world.imports.types")
    for cls in (PluginInfo, Workload, Traffic, RolloutState, ScaleTo, Action_Scale,
                Action_SwitchTraffic, Action_WaitReady, Action_Pause, Action_AwaitPromotion,
                Action_Done, Action_Abort, Step):
        setattr(types, cls.__name__, cls)

    exports = ModuleType("wit_world.exports")
    exports.Plugin = type("Plugin", (), {})
    exports.Rollout = type("Rollout", (), {})
    imports = ModuleType("wit_world.imports")
    imports.types = types
    world = ModuleType("wit_world")
    world.exports, world.imports = exports, imports
    cpt = ModuleType("componentize_py_types")
    cpt.Err = Err
    sys.modules.update({
        "wit_world": world,
        "wit_world.exports": exports,
        "wit_world.imports": imports,
        "wit_world.imports.types": types,
        "componentize_py_types": cpt,
    })


try:
    import wit_world.imports.types  # noqa: F401  (real bindings on PYTHONPATH)
except ImportError:
    _install_stand_ins()

import app  # noqa: E402
from componentize_py_types import Err  # noqa: E402
from wit_world.imports import types as t  # noqa: E402


def workload(replicas, ready=None, restarts=0, unready_ms=0):
    return t.Workload(replicas=replicas, ready=replicas if ready is None else ready,
                      restarts=restarts, unready_ms=unready_ms)


def state(desired=4, stable=None, candidate=None, traffic=None, step_index=0,
          time_in_step_ms=0, memory=""):
    return t.RolloutState(
        desired_replicas=desired,
        stable=stable,
        candidate=candidate if candidate is not None else workload(0),
        traffic=traffic if traffic is not None else t.Traffic.BOTH,
        step_index=step_index,
        time_in_step_ms=time_in_step_ms,
        promoted=False,
        memory=memory,
    )


DEFAULTS = app.parse_settings("")


def settings(steps=4, pause_seconds=30):
    return app.Settings(steps=steps, pause_seconds=pause_seconds)


class ParseSettings(unittest.TestCase):
    def test_empty_means_defaults(self):
        for text in ("", "  ", "{}"):
            self.assertEqual(app.parse_settings(text), settings(4, 30), text)

    def test_values(self):
        self.assertEqual(app.parse_settings('{"steps": 2, "pause-seconds": 0}'), settings(2, 0))
        self.assertEqual(app.parse_settings('{"steps": 1}'), settings(1, 30))

    def test_unknown_key_is_named(self):
        with self.assertRaisesRegex(app.SettingsError, "unknown setting `pause_seconds`"):
            app.parse_settings('{"pause_seconds": 5}')

    def test_bad_values_name_the_key(self):
        for text, key in [
            ('{"steps": 0}', "steps"),
            ('{"steps": -1}', "steps"),
            ('{"steps": 2.5}', "steps"),
            ('{"steps": "4"}', "steps"),
            ('{"steps": true}', "steps"),
            ('{"steps": 101}', "steps"),
            ('{"pause-seconds": -1}', "pause-seconds"),
            ('{"pause-seconds": null}', "pause-seconds"),
        ]:
            with self.assertRaisesRegex(app.SettingsError, f"`{key}` must be", msg=text):
                app.parse_settings(text)

    def test_not_an_object(self):
        for text in ("[]", "4", "null", "{", "steps = 4"):
            with self.assertRaises(app.SettingsError, msg=text):
                app.parse_settings(text)


class CandidateReplicas(unittest.TestCase):
    def test_ceil_of_equal_shares(self):
        self.assertEqual([app.candidate_replicas(4, k, 4) for k in range(1, 5)], [1, 2, 3, 4])
        self.assertEqual([app.candidate_replicas(5, k, 4) for k in range(1, 5)], [2, 3, 4, 5])
        self.assertEqual([app.candidate_replicas(2, k, 4) for k in range(1, 5)], [1, 1, 2, 2])
        self.assertEqual([app.candidate_replicas(1, k, 3) for k in range(1, 4)], [1, 1, 1])


class FirstDeploy(unittest.TestCase):
    def test_scale_wait_done(self):
        s = app.next_step(DEFAULTS, state(desired=3, candidate=workload(0)))
        self.assertEqual(s.action, t.Action_Scale(t.ScaleTo(stable=0, candidate=3)))
        self.assertEqual(s.step_index, 1)
        self.assertEqual(s.memory, "")
        self.assertIn("3", s.description)

        s = app.next_step(DEFAULTS, state(desired=3, candidate=workload(3, ready=1), step_index=1))
        self.assertEqual(s.action, t.Action_WaitReady())
        self.assertIn("1 of 3", s.description)

        s = app.next_step(DEFAULTS, state(desired=3, candidate=workload(3), step_index=1))
        self.assertEqual(s.action, t.Action_Done())


class Steps(unittest.TestCase):
    def test_start_scales_step_one(self):
        # New pods start first, beside every old one.
        s = app.next_step(DEFAULTS, state(desired=4, stable=workload(4), candidate=workload(0)))
        self.assertEqual(s.action, t.Action_Scale(t.ScaleTo(stable=4, candidate=1)))
        self.assertEqual(s.step_index, 1)
        self.assertEqual(s.description, "step 1 of 4: 1 of 4 replicas on the new release; "
                                        "starting new pods: scaling to 1 new and 4 old")

    def test_stops_old_pods_only_once_the_new_ones_are_ready(self):
        s = app.next_step(DEFAULTS, state(stable=workload(4), candidate=workload(1, ready=0),
                                          step_index=1))
        self.assertEqual(s.action, t.Action_WaitReady())
        s = app.next_step(DEFAULTS, state(stable=workload(4), candidate=workload(1),
                                          step_index=1, time_in_step_ms=2000))
        self.assertEqual(s.action, t.Action_Scale(t.ScaleTo(stable=3, candidate=1)))
        self.assertEqual(s.step_index, 1)
        self.assertEqual(s.description, "step 1 of 4: 1 of 4 replicas on the new release; "
                                        "new pods ready, scaling to 1 new and 3 old")
        # The old pod stopping is waited for, then the step pauses as usual.
        s = app.next_step(DEFAULTS, state(stable=workload(3, ready=4), candidate=workload(1),
                                          step_index=1, time_in_step_ms=2000))
        self.assertEqual(s.action, t.Action_WaitReady())
        self.assertTrue(s.description.endswith("waiting for 1 pod"), s.description)
        s = app.next_step(DEFAULTS, state(stable=workload(3), candidate=workload(1),
                                          step_index=1, time_in_step_ms=4000))
        self.assertEqual(s.action, t.Action_Pause(26_000))

    def test_traffic_goes_to_both_first(self):
        s = app.next_step(DEFAULTS, state(stable=workload(4), traffic=t.Traffic.STABLE))
        self.assertEqual(s.action, t.Action_SwitchTraffic(t.Traffic.BOTH))
        self.assertEqual(s.step_index, 1)

    def test_waits_for_ready(self):
        s = app.next_step(DEFAULTS, state(stable=workload(3), candidate=workload(1, ready=0),
                                          step_index=1, time_in_step_ms=5000))
        self.assertEqual(s.action, t.Action_WaitReady())
        self.assertEqual(s.step_index, 1)
        self.assertTrue(s.description.endswith("waiting for 1 pod"), s.description)

    def test_pauses_for_the_rest_of_the_step(self):
        s = app.next_step(DEFAULTS, state(stable=workload(3), candidate=workload(1),
                                          step_index=1, time_in_step_ms=12_500))
        self.assertEqual(s.action, t.Action_Pause(17_500))
        self.assertEqual(s.step_index, 1)
        self.assertIn("next step in 18 s", s.description)

    def test_advances_and_acts_in_the_same_call(self):
        s = app.next_step(DEFAULTS, state(stable=workload(3), candidate=workload(1),
                                          step_index=1, time_in_step_ms=30_000))
        self.assertEqual(s.action, t.Action_Scale(t.ScaleTo(stable=3, candidate=2)))
        self.assertEqual(s.step_index, 2)

    def test_step_with_nothing_to_move_pauses_from_zero(self):
        # desired 2 in 4 steps: steps 1 and 2 both have 1 candidate replica.
        s = app.next_step(DEFAULTS, state(desired=2, stable=workload(1), candidate=workload(1),
                                          step_index=1, time_in_step_ms=40_000))
        self.assertEqual(s.action, t.Action_Pause(30_000))
        self.assertEqual(s.step_index, 2)

    def test_no_pause_after_last_step(self):
        s = app.next_step(DEFAULTS, state(stable=workload(0), candidate=workload(4),
                                          step_index=4, time_in_step_ms=0))
        self.assertEqual(s.action, t.Action_Done())
        self.assertEqual(s.step_index, 4)
        self.assertEqual(s.description, "all 4 replicas on the new release after 4 steps")

    def test_zero_pause_runs_through_steps_without_pausing(self):
        s = app.next_step(settings(4, 0), state(stable=workload(3), candidate=workload(1),
                                                step_index=1))
        self.assertEqual(s.action, t.Action_Scale(t.ScaleTo(stable=3, candidate=2)))
        self.assertEqual(s.step_index, 2)

    def test_step_index_past_the_end_finishes_the_last_step(self):
        s = app.next_step(settings(2), state(stable=workload(2), candidate=workload(2),
                                             step_index=7))
        self.assertEqual(s.action, t.Action_Scale(t.ScaleTo(stable=2, candidate=4)))
        self.assertEqual(s.step_index, 2)

    def test_abort_on_restarts(self):
        ok = app.next_step(DEFAULTS, state(stable=workload(3), candidate=workload(1, restarts=3),
                                           step_index=1))
        self.assertNotIsInstance(ok.action, t.Action_Abort)
        s = app.next_step(DEFAULTS, state(stable=workload(3), candidate=workload(1, restarts=4),
                                          step_index=2))
        self.assertIsInstance(s.action, t.Action_Abort)
        self.assertIn("restarted 4 times", s.action.value)
        self.assertIn("old release", s.action.value)
        s = app.next_step(DEFAULTS, state(candidate=workload(2, restarts=9)))
        self.assertIsInstance(s.action, t.Action_Abort)

    def test_abort_when_a_pod_stays_unready_over_5_minutes(self):
        ok = app.next_step(DEFAULTS, state(stable=workload(4), candidate=workload(
            1, ready=0, unready_ms=300_000), step_index=1))
        self.assertEqual(ok.action, t.Action_WaitReady())
        s = app.next_step(DEFAULTS, state(stable=workload(4), candidate=workload(
            1, ready=0, unready_ms=300_001), step_index=1))
        self.assertIsInstance(s.action, t.Action_Abort)
        self.assertEqual(s.step_index, 1)
        self.assertEqual(s.action.value, "the new release does not get ready: a pod has been "
                                         "unready for 300 s (at most 300 s allowed); "
                                         "going back to the old release")
        s = app.next_step(DEFAULTS, state(candidate=workload(3, ready=1, unready_ms=400_000)))
        self.assertIsInstance(s.action, t.Action_Abort)
        self.assertIn("stopping the deploy", s.action.value)


class FakeHost:
    """Applies each action at once and calls again, as the WIT describes. A
    `wait-ready` lasts 2 s; with `never_ready` the candidate's pods stay unready and
    the host asks again after each such wait."""

    def __init__(self, settings_json, desired, stable, never_ready=False):
        self.settings = settings_json
        # The Service is where it was: on the old release, or on a first deploy on
        # the new one (wit: `traffic`).
        self.state = state(desired=desired, stable=workload(stable) if stable is not None else None,
                           traffic=t.Traffic.STABLE if stable is not None else t.Traffic.CANDIDATE)
        self.never_ready = never_ready
        self.log = []
        # Pods the Service reaches after each action: ready and not stopping.
        self.serving = []

    def _serving(self):
        st = self.state
        up = [min(w.ready, w.replicas) if w is not None else 0 for w in (st.stable, st.candidate)]
        if st.traffic == t.Traffic.STABLE:
            return up[0]
        if st.traffic == t.Traffic.CANDIDATE:
            return up[1]
        return sum(up)

    def run(self, limit=100):
        rollout = app.Rollout()
        for _ in range(limit):
            s = rollout.next(self.settings, self.state)
            st = self.state
            self.log.append((type(s.action).__name__, s.step_index))
            if s.step_index != st.step_index:
                st.time_in_step_ms = 0
            st.step_index, st.memory = s.step_index, s.memory
            a = s.action
            if isinstance(a, t.Action_Scale):
                assert st.stable is None or (st.stable.replicas, st.candidate.replicas) != \
                    (a.value.stable, a.value.candidate), "scale to the counts already there"
                if st.stable is not None:
                    st.stable.replicas = a.value.stable
                st.candidate.replicas = a.value.candidate
            elif isinstance(a, t.Action_SwitchTraffic):
                assert st.traffic != a.value, "switch to the traffic already there"
                st.traffic = a.value
            elif isinstance(a, t.Action_WaitReady):
                workloads = [w for w in (st.stable, st.candidate) if w is not None]
                assert any(w.ready != w.replicas for w in workloads), \
                    "wait-ready with every pod ready"
                for w in workloads:
                    if w is st.candidate and self.never_ready:
                        w.unready_ms += 2000 if w.ready < w.replicas else 0
                    else:
                        w.ready = w.replicas
                st.time_in_step_ms += 2000
            elif isinstance(a, t.Action_Pause):
                assert a.value > 0
                st.time_in_step_ms += a.value
            else:
                return a
            self.serving.append((st.traffic, self._serving()))
        raise AssertionError("no end after %d calls" % limit)


class Simulation(unittest.TestCase):
    def test_full_rollout(self):
        host = FakeHost('{"steps": 4, "pause-seconds": 30}', desired=4, stable=4)
        self.assertEqual(host.run(), t.Action_Done())
        # Each step: start new pods, wait, stop old pods, wait.
        move = [("Action_Scale",), ("Action_WaitReady",)] * 2
        self.assertEqual(host.log, [("Action_SwitchTraffic", 1)] + [
            entry + (k,) for k in (1, 2, 3, 4)
            for entry in move + [("Action_Pause",) if k < 4 else ("Action_Done",)]
        ])
        self.assertEqual((host.state.stable.replicas, host.state.candidate.replicas), (0, 4))
        # Once traffic goes to both, never fewer than 4 pods serve.
        self.assertEqual(host.serving[0], (t.Traffic.BOTH, 4))
        self.assertGreaterEqual(min(n for _, n in host.serving), 4, host.serving)

    def test_new_pods_that_never_get_ready_abort_after_5_minutes(self):
        host = FakeHost("{}", desired=4, stable=4, never_ready=True)
        end = host.run(limit=200)
        self.assertIsInstance(end, t.Action_Abort)
        self.assertIn("unready for 302 s", end.value)
        # Started 1 new pod, then waited 2 s at a time until past 300 s.
        self.assertEqual(host.log[:3], [("Action_SwitchTraffic", 1), ("Action_Scale", 1),
                                        ("Action_WaitReady", 1)])
        self.assertEqual(len(host.log), 2 + 151 + 1)
        # The old release was never touched.
        self.assertEqual((host.state.stable.replicas, host.state.stable.ready), (4, 4))

    def test_every_shape_ends(self):
        for desired in (0, 1, 2, 3, 7):
            for steps in (1, 2, 3, 5):
                for pause in (0, 1):
                    for stable in (None, 0, desired):
                        host = FakeHost(json.dumps({"steps": steps, "pause-seconds": pause}),
                                        desired, stable)
                        with self.subTest(desired=desired, steps=steps, pause=pause,
                                          stable=stable):
                            self.assertEqual(host.run(), t.Action_Done())
                            self.assertEqual(host.state.candidate.replicas, desired)
                            if stable == desired:
                                low = min((n for traffic, n in host.serving
                                           if traffic != t.Traffic.STABLE), default=desired)
                                self.assertGreaterEqual(low, desired, host.serving)


class Glue(unittest.TestCase):
    def test_describe(self):
        info = app.Plugin().describe()
        self.assertEqual((info.name, info.version), ("strategy-linear-py", "0.1.0"))
        schema = json.loads(info.settings_schema)
        self.assertEqual(sorted(schema["properties"]), ["pause-seconds", "steps"])
        self.assertFalse(schema["additionalProperties"])

    def test_check_config(self):
        app.Plugin().check_config("")
        app.Plugin().check_config('{"steps": 4, "pause-seconds": 30}')
        with self.assertRaises(Err) as e:
            app.Plugin().check_config('{"step": 4}')
        self.assertIn("`step`", e.exception.value)

    def test_next_rejects_bad_settings(self):
        with self.assertRaises(Err) as e:
            app.Rollout().next('{"steps": 0}', state(stable=workload(4)))
        self.assertIn("`steps`", e.exception.value)


if __name__ == "__main__":
    unittest.main()
