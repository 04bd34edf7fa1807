"""Unit tests for app.py under plain CPython: `python3 -m unittest -v`.

app.py imports the bindings componentize-py generates (`wit_world`,
`componentize_py_types`); `warship_plugin.testing` stands in for them, and brings the
fake host that runs `next` the way warship's host does, on scripted pods in simulated
time. `warship plugin test dist/strategy-linear-py.wasm` runs the built component
through the real host loop.

To run against the real generated types instead:

    componentize-py -d wit -w strategy bindings /tmp/bindings
    PYTHONPATH=/tmp/bindings python3 -m unittest -v
"""

import json
import unittest

from warship_plugin.testing import (
    End, Err, FakeHost, SettingsError, rollout_state, run_scenario, scenario_files, types as t,
    workload,
)

import app


def state(desired=4, stable=None, candidate=None, traffic=None, step_index=0,
          time_in_step_ms=0, memory=""):
    """What `next` is told; traffic already split between both releases by default."""
    return rollout_state(desired=desired, stable=stable, candidate=candidate,
                         traffic=traffic if traffic is not None else t.Traffic.BOTH,
                         step_index=step_index, time_in_step_ms=time_in_step_ms, memory=memory)


def settings(steps=4, pause_seconds=30):
    return app.SETTINGS.parse(json.dumps({"steps": steps, "pause-seconds": pause_seconds}))


DEFAULTS = app.SETTINGS.defaults()


class ParseSettings(unittest.TestCase):
    def test_empty_means_defaults(self):
        for text in ("", "  ", "{}"):
            self.assertEqual(app.SETTINGS.parse(text), settings(4, 30), text)

    def test_values(self):
        self.assertEqual(app.SETTINGS.parse('{"steps": 2, "pause-seconds": 0}'), settings(2, 0))
        self.assertEqual(app.SETTINGS.parse('{"steps": 1}'), settings(1, 30))

    def test_unknown_key_is_named(self):
        with self.assertRaisesRegex(SettingsError, "unknown setting `pause_seconds`"):
            app.SETTINGS.parse('{"pause_seconds": 5}')

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
            with self.assertRaisesRegex(SettingsError, f"`{key}` must be", msg=text):
                app.SETTINGS.parse(text)

    def test_not_an_object(self):
        for text in ("[]", "4", "null", "{", "steps = 4"):
            with self.assertRaises(SettingsError, msg=text):
                app.SETTINGS.parse(text)


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


class OnTheFakeHost(unittest.TestCase):
    def test_full_rollout(self):
        host = FakeHost(app.Rollout, desired=4, stable=4, settings={"steps": 4, "pause-seconds": 30})
        self.assertEqual(host.run(), End("done"))
        # Each step: start new pods, wait, stop old pods, wait; a pause between steps.
        move = ["scale", "wait-ready", "scale", "wait-ready"]
        self.assertEqual(host.kinds(), ["switch-traffic"] + (move + ["pause"]) * 3 + move + ["done"])
        self.assertEqual(host.scales(), [(4, 1), (3, 1), (3, 2), (2, 2), (2, 3), (1, 3), (1, 4), (0, 4)])
        self.assertEqual([s.step_index for s in host.steps][::5], [1, 1, 2, 3, 4])
        self.assertEqual(host.counts(), ((0, 0), (4, 4)))
        # Each step lasts its 30 s: pods take a second each, the pause the rest.
        self.assertEqual(host.now_ms, 3 * 30_000 + 2_000)
        # New pods start before old ones stop: never fewer than 4 serve.
        self.assertEqual(host.min_serving, 4)

    def test_new_pods_that_never_get_ready_abort_after_5_minutes(self):
        host = FakeHost(app.Rollout, desired=4, stable=4, pods="never-ready")
        end = host.run()
        self.assertEqual(end.kind, "aborted")
        self.assertIn("unready for 301 s", end.reason)
        self.assertEqual(host.kinds()[:3], ["switch-traffic", "scale", "wait-ready"])
        # The old release was never touched, and serves alone again.
        self.assertNotIn((3, 1), host.scales())
        self.assertEqual(host.counts(), ((4, 4), (0, 0)))
        self.assertEqual(host.min_serving, 4)

    def test_a_crash_loop_aborts_after_3_restarts(self):
        end = FakeHost(app.Rollout, desired=4, stable=4, pods="crash-loop").run()
        self.assertEqual(end.kind, "aborted")
        self.assertIn("restarted 4 times (at most 3 allowed)", end.reason)

    def test_a_new_host_carries_on_from_the_observed_counts(self):
        whole = FakeHost(app.Rollout, desired=4, stable=4, settings={"steps": 2, "pause-seconds": 5})
        whole.run()
        for after in range(1, len(whole.steps)):
            host = FakeHost(app.Rollout, desired=4, stable=4, restart_host_after_calls=after,
                            settings={"steps": 2, "pause-seconds": 5})
            with self.subTest(restart_after=after):
                self.assertEqual(host.run(), End("done"))
                self.assertEqual(host.host_restarts, 1)
                # A scale persisted but never carried out is answered again; else the same.
                scales = host.scales()
                again = [i for i in range(1, len(scales)) if scales[i] == scales[i - 1]]
                self.assertLessEqual(len(again), 1)
                self.assertEqual([x for i, x in enumerate(scales) if i not in again], whole.scales())
                self.assertGreaterEqual(host.min_serving, 4)

    def test_every_shape_ends(self):
        for desired in (0, 1, 2, 3, 7):
            for steps in (1, 2, 3, 5):
                for pause in (0, 1):
                    for stable in (0, 1, desired):
                        host = FakeHost(app.Rollout, desired=desired, stable=stable,
                                        settings={"steps": steps, "pause-seconds": pause})
                        with self.subTest(desired=desired, steps=steps, pause=pause, stable=stable):
                            self.assertEqual(host.run(), End("done"))
                            self.assertEqual(host.counts()[1], (desired, desired))
                            if stable == desired:
                                self.assertGreaterEqual(host.min_serving, desired, host.serving)

    def test_scenarios(self):
        files = scenario_files(__file__)
        self.assertEqual([p.name for p in files], ["crash-loop.toml", "healthy.toml", "host-restart.toml"])
        for path in files:
            with self.subTest(scenario=path.name):
                run_scenario(path, app.Rollout)


class Glue(unittest.TestCase):
    def test_describe(self):
        info = app.Plugin().describe()
        self.assertEqual((info.name, info.version), ("strategy-linear-py", "0.2.0"))
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
