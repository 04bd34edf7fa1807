"""Scenario files (`scenarios/*.toml`): one scripted rollout and what it must end in.
`warship plugin test dist/NAME.wasm --scenario FILE` runs the built component through
the real host loop; `run_scenario` runs `app.py` through the fake host, for unit tests.

    description = "four pods, one crashing"   # optional
    desired = 4              # replicas the env asks for (default 3)
    stable = 4               # pods of the serving release; 0 = a first deploy (default: desired)
    exact-weights = false
    settings = { max-restarts = 2 }   # the plugin's settings, laid over the base settings
    pods = "healthy"         # healthy | slow-ready | never-ready | crash-loop
    ready-after-seconds = 20 # slow-ready only
    promote-after-seconds = 5          # leave out: nobody promotes
    abort-after-seconds = 30           # a user aborts the rollout this long after it starts
    restart-host-after-calls = 3       # the host goes down after persisting this answer
    [expect]
    end = "done"             # done | aborted | failed | awaiting-promotion
    reason = "restarted"     # text the abort/failure reason contains
    min-serving = 4          # pods serving requests never fewer than this
"""

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from warship_plugin.fakehost import PODS, FakeHost

ENDS = ("done", "aborted", "failed", "awaiting-promotion")

# key: (attribute, type, default)
_KEYS = {
    "description": ("description", str, ""),
    "desired": ("desired", int, 3),
    "stable": ("stable", int, None),
    "exact-weights": ("exact_weights", bool, False),
    "settings": ("settings", dict, {}),
    "pods": ("pods", str, "healthy"),
    "ready-after-seconds": ("ready_after_seconds", int, None),
    "promote-after-seconds": ("promote_after_seconds", int, None),
    "abort-after-seconds": ("abort_after_seconds", int, None),
    "restart-host-after-calls": ("restart_host_after_calls", int, None),
}
_EXPECT = {
    "end": ("end", str, "done"),
    "reason": ("reason", str, None),
    "min-serving": ("min_serving", int, None),
}


class ScenarioError(ValueError):
    """A scenario file that cannot be read; the message names the file and the key."""


class ScenarioFailed(AssertionError):
    """A run that did not end as the scenario expects; the message shows the run."""


@dataclass
class Expect:
    end: str = "done"
    reason: Optional[str] = None
    min_serving: Optional[int] = None


@dataclass
class Scenario:
    name: str = "scenario"
    description: str = ""
    desired: int = 3
    stable: Optional[int] = None
    exact_weights: bool = False
    settings: dict = field(default_factory=dict)
    pods: str = "healthy"
    ready_after_seconds: Optional[int] = None
    promote_after_seconds: Optional[int] = None
    abort_after_seconds: Optional[int] = None
    restart_host_after_calls: Optional[int] = None
    expect: Expect = field(default_factory=Expect)

    def host(self, strategy, settings=""):
        """A FakeHost for this scenario; its settings laid over `settings` (JSON text or
        a dict), key by key."""
        base = settings if isinstance(settings, dict) else json.loads(settings or "{}")
        return FakeHost(
            strategy, desired=self.desired, stable=self.stable,
            settings={**base, **self.settings}, exact_weights=self.exact_weights,
            pods=self.pods, ready_after_seconds=self.ready_after_seconds,
            promote_after_seconds=self.promote_after_seconds,
            abort_after_seconds=self.abort_after_seconds,
            restart_host_after_calls=self.restart_host_after_calls,
        )

    def check(self, host):
        """Raises ScenarioFailed unless the run ended as expected."""
        want, end = self.expect, host.end
        wrong = []
        if end is None:
            wrong.append("the rollout has not ended")
        elif end.kind != want.end:
            wrong.append(f"it ended {end.kind}, not {want.end}")
        if end is not None and want.reason is not None and want.reason not in end.reason:
            wrong.append(f"its reason does not contain {want.reason!r}")
        if want.min_serving is not None and host.min_serving < want.min_serving:
            at = host.serving.index(host.min_serving)
            wrong.append(f"only {host.min_serving} pods served at one point, fewer than "
                         f"{want.min_serving}: {host.history[at]}")
        if wrong:
            said = f" ({self.description})" if self.description else ""
            raise ScenarioFailed(
                f"{self.name}{said}: " + "; ".join(wrong)
                + f"\n  end: {end}\n  answers: {host.kinds()}"
                + (f"\n  last: {host.steps[-1].description!r}" if host.steps else ""))


def _take(table, keys, where, into):
    for key, value in table.items():
        if key not in keys:
            raise ScenarioError(f"{where}: unknown key `{key}` (known: {', '.join(keys)})")
        attribute, kind, _ = keys[key]
        fits = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not fits or (kind is int and value < 0):
            words = {int: "a whole number, 0 or more", str: "a string", bool: "true or false",
                     dict: "a table"}[kind]
            raise ScenarioError(f"{where}: `{key}` must be {words} (got {value!r})")
        setattr(into, attribute, value)


def load_scenario(path):
    """The scenario in a TOML file; ScenarioError names the file and the bad key."""
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ScenarioError(f"{path}: {e}") from None
    scenario = Scenario(name=path.name)
    expect = table.pop("expect", {})
    if not isinstance(expect, dict):
        raise ScenarioError(f"{path}: `expect` must be a table, [expect]")
    _take(table, _KEYS, str(path), scenario)
    _take(expect, _EXPECT, f"{path} [expect]", scenario.expect)
    if scenario.pods not in PODS:
        raise ScenarioError(f"{path}: `pods` must be one of {', '.join(PODS)} (got {scenario.pods!r})")
    if (scenario.pods == "slow-ready") != (scenario.ready_after_seconds is not None):
        raise ScenarioError(f"{path}: `ready-after-seconds` goes with pods = \"slow-ready\", "
                            "and only with it")
    if scenario.expect.end not in ENDS:
        raise ScenarioError(f"{path} [expect]: `end` must be one of {', '.join(ENDS)} "
                            f"(got {scenario.expect.end!r})")
    return scenario


def run_scenario(path, strategy, settings=""):
    """Runs `strategy` (app.Rollout) through the scenario in `path` on the fake host;
    returns the host after the run, or raises ScenarioFailed."""
    scenario = load_scenario(path)
    host = scenario.host(strategy, settings)
    host.run()
    scenario.check(host)
    return host
