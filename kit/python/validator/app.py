"""{{name}}: a warship validator plugin in Python.

A validator answers every reason to refuse an env (`validate_env`, when a user creates
or changes one) or a deploy (`validate_deploy`, a WAR to an env), all at once, as
`Violation`s: the field at fault, a stable code, and a message a user can act on. An
empty list lets it through. Every validator loaded is asked, after the built-in rules.

This one has one rule: an env may ask for at most `max-replicas` replicas.

The contract is the `validator` world of `wit/plugin.wit`. Calls are pure functions of
their arguments: no clock, files, network or memory between calls. `Plugin` and
`Validate` are the glue, named after the WIT interfaces the world exports, as
componentize-py requires.
"""

from wit_world import exports
from wit_world.imports import types

from warship_plugin.settings import SettingsError, SettingsSchema

NAME = "{{name}}"
VERSION = "0.1.0"

SETTINGS = SettingsSchema({
    "max-replicas": {
        "type": "integer", "minimum": 1, "maximum": 1000, "default": 10,
        "description": "the most replicas an env may ask for",
    },
})


def env_violations(settings, platform, env):
    """Every rule over the env, in order."""
    out = []
    if env.replicas > settings.max_replicas:
        out.append(types.Violation(
            field="replicas",
            code="env.replicas.too_many",
            message=f"replicas must be at most {settings.max_replicas} (got {env.replicas})",
        ))
    return out


def _with_settings(text, rules):
    # check-config refused bad settings at load; should some still arrive, refuse
    # rather than judge by rules nobody configured.
    try:
        settings = SETTINGS.parse(text)
    except SettingsError as e:
        return [types.Violation(field="settings", code="plugin.settings.invalid",
                                message=f"the {NAME} validator's invalid settings: {e}")]
    return rules(settings)


class Plugin(exports.Plugin):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(name=NAME, version=VERSION, settings_schema=SETTINGS.schema_json())

    def check_config(self, settings: str) -> None:
        SETTINGS.parse_or_err(settings)


class Validate(exports.Validate):
    def validate_env(self, settings: str, platform: types.Platform,
                     env: types.EnvSpec) -> list[types.Violation]:
        return _with_settings(settings, lambda s: env_violations(s, platform, env))

    def validate_deploy(self, settings: str, platform: types.Platform, env: types.EnvSpec,
                        war: types.WarFacts) -> list[types.Violation]:
        # The env's rules again, then any about the WAR (`war.size`, `war.servlet_api`, ...).
        return _with_settings(settings, lambda s: env_violations(s, platform, env))
