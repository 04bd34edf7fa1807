"""Unit tests under plain CPython: `python3 -m unittest`.

`warship_plugin.testing` stands in for the bindings componentize-py generates and
builds what the host passes (`env_spec`, `platform`, `war_facts`).
"""

import json
import unittest

from warship_plugin.testing import Err, env_spec, platform, types, war_facts

import app


class Rules(unittest.TestCase):
    def test_an_env_within_the_limit_passes(self):
        self.assertEqual(app.Validate().validate_env("", platform(), env_spec(replicas=10)), [])

    def test_too_many_replicas(self):
        got = app.Validate().validate_env('{"max-replicas": 3}', platform(), env_spec(replicas=4))
        self.assertEqual(got, [types.Violation(
            field="replicas", code="env.replicas.too_many",
            message="replicas must be at most 3 (got 4)")])

    def test_deploys_are_held_to_the_same_rule(self):
        got = app.Validate().validate_deploy("", platform(), env_spec(replicas=11), war_facts())
        self.assertEqual([v.code for v in got], ["env.replicas.too_many"])

    def test_bad_settings_refuse_rather_than_judge(self):
        got = app.Validate().validate_env('{"max-replicas": 0}', platform(), env_spec())
        self.assertEqual([v.code for v in got], ["plugin.settings.invalid"])


class Glue(unittest.TestCase):
    def test_describe(self):
        info = app.Plugin().describe()
        self.assertEqual(info.name, "{{name}}")
        self.assertEqual(list(json.loads(info.settings_schema)["properties"]), ["max-replicas"])

    def test_check_config_names_the_key(self):
        app.Plugin().check_config("")
        with self.assertRaises(Err) as e:
            app.Plugin().check_config('{"max-replica": 3}')
        self.assertIn("`max-replica`", e.exception.value)


if __name__ == "__main__":
    unittest.main()
