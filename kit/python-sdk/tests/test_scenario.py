"""Scenario files: `cd kit/python-sdk && python3 -m unittest discover -s tests`."""

import tempfile
import unittest
from pathlib import Path

from warship_plugin.testing import (
    ScenarioError, ScenarioFailed, load_scenario, run_scenario, types as t,
)


def blue_green(settings, s):
    limit = __import__("json").loads(settings or "{}").get("max-restarts", 3)
    if s.candidate.restarts > limit:
        return t.Step(action=t.Action_Abort(f"restarted {s.candidate.restarts} times"),
                      step_index=1, description="d", memory="")
    if s.candidate.replicas != s.desired_replicas:
        to = t.ScaleTo(stable=s.stable.replicas if s.stable else 0, candidate=s.desired_replicas)
        action = t.Action_Scale(to)
    elif s.candidate.ready != s.candidate.replicas:
        action = t.Action_WaitReady()
    else:
        action = t.Action_Done()
    return t.Step(action=action, step_index=1, description="d", memory="")


class Files(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def write(self, text, name="s.toml"):
        path = Path(self.dir.name) / name
        path.write_text(text)
        return path

    def test_every_key(self):
        scenario = load_scenario(self.write(
            'description = "d"\ndesired = 4\nstable = 0\nexact-weights = true\n'
            'settings = { max-restarts = 2 }\npods = "slow-ready"\nready-after-seconds = 20\n'
            'promote-after-seconds = 5\nabort-after-seconds = 30\nrestart-host-after-calls = 3\n'
            '[expect]\nend = "aborted"\nreason = "restarted"\nmin-serving = 4\n'))
        self.assertEqual((scenario.desired, scenario.stable, scenario.settings, scenario.pods),
                         (4, 0, {"max-restarts": 2}, "slow-ready"))
        self.assertEqual((scenario.expect.end, scenario.expect.reason, scenario.expect.min_serving),
                         ("aborted", "restarted", 4))

    def test_defaults(self):
        scenario = load_scenario(self.write(""))
        self.assertEqual((scenario.desired, scenario.stable, scenario.pods, scenario.expect.end),
                         (3, None, "healthy", "done"))

    def test_mistakes_name_the_file_and_key(self):
        for text, said in [
            ("desird = 3", "unknown key `desird`"),
            ("desired = -1", "`desired` must be a whole number"),
            ('desired = "3"', "`desired` must be a whole number"),
            ("exact-weights = 1", "`exact-weights` must be true or false"),
            ('pods = "flaky"', "`pods` must be one of healthy"),
            ("ready-after-seconds = 3", "`ready-after-seconds` goes with"),
            ('[expect]\nend = "ok"', "`end` must be one of done"),
            ("[expect]\nmin-servin = 1", "[expect]: unknown key `min-servin`"),
            ("desired = ", "s.toml"),
        ]:
            with self.assertRaises(ScenarioError, msg=text) as e:
                load_scenario(self.write(text))
            self.assertIn(said, str(e.exception), text)
            self.assertIn("s.toml", str(e.exception))

    def test_a_run_that_meets_its_expectations(self):
        path = self.write('desired = 4\nsettings = { max-restarts = 2 }\npods = "crash-loop"\n'
                          '[expect]\nend = "aborted"\nreason = "restarted 3 times"\nmin-serving = 4\n')
        host = run_scenario(path, blue_green, settings='{"max-restarts": 9, "other": 1}')
        self.assertEqual(host.end.kind, "aborted")
        self.assertEqual(host.settings, '{"max-restarts": 2, "other": 1}')

    def test_a_run_that_does_not(self):
        path = self.write('description = "hopeful"\npods = "never-ready"\n'
                          'abort-after-seconds = 10\n[expect]\nend = "done"\n', name="never.toml")
        with self.assertRaises(ScenarioFailed) as e:
            run_scenario(path, blue_green)
        message = str(e.exception)
        self.assertIn("never.toml (hopeful): it ended aborted, not done", message)
        self.assertIn("answers: ['scale', 'wait-ready'", message)


if __name__ == "__main__":
    unittest.main()
