"""warship_plugin.settings: `cd kit/python-sdk && python3 -m unittest discover -s tests`."""

import json
import unittest

from warship_plugin.testing import Err  # noqa: F401  (installs the stand-ins)
from warship_plugin.settings import SettingsError, SettingsSchema

SCHEMA = SettingsSchema({
    "steps": {"type": "integer", "minimum": 1, "maximum": 100, "default": 4},
    "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
    "dry-run": {"type": "boolean", "default": False},
    "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.5},
    "stages": {
        "type": "array", "maxItems": 3, "default": [],
        "items": {"type": "object", "properties": {
            "weight": {"type": "integer", "minimum": 0, "maximum": 100},
            "pause-seconds": {"type": "integer", "minimum": 0, "default": 0},
        }},
    },
})


class Parse(unittest.TestCase):
    def test_empty_means_every_default(self):
        for text in ("", "  ", "{}"):
            s = SCHEMA.parse(text)
            self.assertEqual((s.steps, s.mode, s.dry_run, s.ratio, s.stages), (4, "safe", False, 0.5, []))

    def test_values_and_nested_objects(self):
        s = SCHEMA.parse('{"steps": 2.0, "stages": [{"weight": 10}, {"weight": 50, "pause-seconds": 5}]}')
        self.assertEqual(s.steps, 2)
        self.assertIsInstance(s.steps, int)
        self.assertEqual([(x.weight, x.pause_seconds) for x in s.stages], [(10, 0), (50, 5)])

    def test_every_message_names_the_key(self):
        for text, said in [
            ('{"step": 4}', "unknown setting `step` (known: steps, mode, dry-run, ratio, stages)"),
            ('{"steps": 0}', "`steps` must be a whole number from 1 to 100 (got 0)"),
            ('{"steps": true}', "`steps` must be a whole number from 1 to 100 (got true)"),
            ('{"steps": 2.5}', "`steps` must be a whole number"),
            ('{"steps": "4"}', "`steps` must be a whole number"),
            ('{"mode": "slow"}', '`mode` must be one of "fast", "safe" (got "slow")'),
            ('{"dry-run": 1}', "`dry-run` must be true or false (got 1)"),
            ('{"ratio": 0}', "`ratio` must be a number of at most 1 and above 0 (got 0)"),
            ('{"stages": {}}', "`stages` must be a list"),
            ('{"stages": [{}, {}, {}, {}]}', "`stages` must hold from 0 to 3 entries (got 4)"),
            ('{"stages": [{"weight": 5}, {}]}', "`stages[1].weight` is required"),
            ('{"stages": [{"weight": 500}]}', "`stages[0].weight` must be a whole number from 0 to 100"),
            ('{"stages": [{"weight": 5, "x": 1}]}', "unknown setting `stages[0].x` (known: weight, pause-seconds)"),
            ("[]", "settings must be a JSON object"),
            ("{", "settings are not valid JSON"),
        ]:
            with self.assertRaises(SettingsError, msg=text) as e:
                SCHEMA.parse(text)
            self.assertIn(said, str(e.exception), text)

    def test_parse_or_err_answers_the_wit_error(self):
        with self.assertRaises(Err) as e:
            SCHEMA.parse_or_err('{"steps": 0}')
        self.assertTrue(e.exception.value.startswith("invalid settings: `steps`"), e.exception.value)


class Schema(unittest.TestCase):
    def test_what_describe_publishes(self):
        schema = json.loads(SCHEMA.schema_json())
        self.assertEqual(schema["$schema"], "https://json-schema.org/draft/2020-12/schema")
        self.assertEqual(schema["type"], "object")
        self.assertIs(schema["additionalProperties"], False)
        self.assertNotIn("required", schema)
        stage = schema["properties"]["stages"]["items"]
        self.assertEqual((stage["additionalProperties"], stage["required"]), (False, ["weight"]))

    def test_keywords_it_does_not_check_are_refused(self):
        with self.assertRaisesRegex(ValueError, "`name` uses format, which"):
            SettingsSchema({"name": {"type": "string", "format": "email"}})
        with self.assertRaisesRegex(ValueError, "`n` needs a type"):
            SettingsSchema({"n": {"minimum": 1}})
        with self.assertRaisesRegex(ValueError, "uses minimum"):
            SettingsSchema({"s": {"type": "string", "minimum": 1}})

    def test_a_default_must_fit(self):
        with self.assertRaisesRegex(ValueError, "`steps` has a default that does not fit it"):
            SettingsSchema({"steps": {"type": "integer", "minimum": 1, "default": 0}})

    def test_required_keys(self):
        schema = SettingsSchema({"url": {"type": "string", "minLength": 1}})
        self.assertEqual(json.loads(schema.schema_json())["required"], ["url"])
        with self.assertRaisesRegex(SettingsError, "`url` is required"):
            schema.parse("")
        self.assertEqual(schema.parse('{"url": "x"}').url, "x")


if __name__ == "__main__":
    unittest.main()
