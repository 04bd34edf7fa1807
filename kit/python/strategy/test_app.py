"""Unit tests under plain CPython: `python3 -m unittest`.

`warship_plugin.testing` stands in for the bindings componentize-py generates and brings
a fake host that runs `next` the way warship's host does, on scripted pods in simulated
time. `warship plugin test dist/{{name}}.wasm` then runs the built component through the
real host loop.
"""

import json
import unittest

from warship_plugin.testing import (
    End, Err, FakeHost, rollout_state, run_scenario, scenario_files, types, workload,
)

import app

DEFAULTS = app.SETTINGS.defaults()


class Settings(unittest.TestCase):
    def test_defaults(self):
        self.assertEqual((DEFAULTS.max_restarts, DEFAULTS.max_unready_seconds), (3, 300))

    def test_a_bad_key_is_named(self):
        for text, key in [('{"max-restart": 1}', "max-restart"), ('{"max-restarts": -1}', "max-restarts")]:
            with self.assertRaises(Err, msg=text) as e:
                app.Plugin().check_config(text)
            self.assertIn(f"`{key}`", e.exception.value)

    def test_describe(self):
        info = app.Plugin().describe()
        self.assertEqual(info.name, "{{name}}")
        schema = json.loads(info.settings_schema)
        self.assertEqual(sorted(schema["properties"]), ["max-restarts", "max-unready-seconds"])


class NextStep(unittest.TestCase):
    def test_starts_the_new_pods_beside_the_old(self):
        s = app.next_step(DEFAULTS, rollout_state(desired=4, stable=workload(4)))
        self.assertEqual(s.action, types.Action_Scale(types.ScaleTo(stable=4, candidate=4)))

    def test_waits_then_done(self):
        waiting = rollout_state(desired=4, stable=workload(4), candidate=workload(4, ready=1))
        self.assertEqual(app.next_step(DEFAULTS, waiting).action, types.Action_WaitReady())
        ready = rollout_state(desired=4, stable=workload(4), candidate=workload(4))
        self.assertEqual(app.next_step(DEFAULTS, ready).action, types.Action_Done())

    def test_aborts_past_its_limits(self):
        crashing = rollout_state(stable=workload(3), candidate=workload(3, ready=0, restarts=4))
        self.assertIsInstance(app.next_step(DEFAULTS, crashing).action, types.Action_Abort)
        stuck = rollout_state(stable=workload(3), candidate=workload(3, ready=2, unready_ms=300_001))
        self.assertIsInstance(app.next_step(DEFAULTS, stuck).action, types.Action_Abort)


class OnTheFakeHost(unittest.TestCase):
    def test_healthy(self):
        host = FakeHost(app.Rollout, desired=4, stable=4)
        self.assertEqual(host.run(), End("done"))
        self.assertEqual(host.kinds(), ["scale", "wait-ready", "done"])
        self.assertEqual(host.counts(), ((0, 0), (4, 4)))
        self.assertGreaterEqual(host.min_serving, 4)

    def test_first_deploy(self):
        host = FakeHost(app.Rollout, desired=2, stable=0)
        self.assertEqual(host.run(), End("done"))
        self.assertEqual(host.scales(), [(0, 2)])

    def test_crash_loop_aborts_and_the_old_release_serves_again(self):
        host = FakeHost(app.Rollout, desired=4, stable=4, pods="crash-loop",
                        settings={"max-restarts": 2})
        end = host.run()
        self.assertEqual(end.kind, "aborted")
        self.assertIn("restarted 3 times", end.reason)
        self.assertEqual(host.counts(), ((4, 4), (0, 0)))

    def test_a_host_restart_carries_on(self):
        host = FakeHost(app.Rollout, desired=3, stable=3, restart_host_after_calls=1)
        self.assertEqual(host.run(), End("done"))
        self.assertEqual(host.host_restarts, 1)

    def test_scenarios(self):
        files = scenario_files(__file__)
        self.assertTrue(files, "no scenarios/*.toml")
        for path in files:
            with self.subTest(scenario=path.name):
                run_scenario(path, app.Rollout)


if __name__ == "__main__":
    unittest.main()
