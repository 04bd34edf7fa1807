"""Everything a plugin's unit tests need, under plain CPython (`python3 -m unittest`).

Importing this module installs the stand-ins for the generated bindings
(`warship_plugin.stand_ins`) unless the real ones import, so import it before `app`:

    from warship_plugin.testing import FakeHost, End, types, Err, rollout_state, workload
    import app

Then build what the host passes with the factories below (every argument has a plain
default) and run strategies through `FakeHost` or a scenario file (`run_scenario`).

To run the same tests against the real generated types:

    componentize-py -d wit -w strategy bindings /tmp/bindings
    PYTHONPATH=/tmp/bindings python3 -m unittest
"""

from pathlib import Path

from warship_plugin.stand_ins import install_stand_ins

#: True under the stand-ins, False under real generated bindings.
STAND_INS = install_stand_ins()

from componentize_py_types import Err  # noqa: E402
from wit_world.imports import types  # noqa: E402

from warship_plugin.fakehost import ContractError, End, FakeHost, Pods  # noqa: E402,F401
from warship_plugin.scenario import (  # noqa: E402,F401
    Scenario, ScenarioError, ScenarioFailed, load_scenario, run_scenario,
)
from warship_plugin.settings import SettingsError, SettingsSchema  # noqa: E402,F401


def scenario_files(test_file, folder="scenarios"):
    """The `*.toml` files in `folder` beside `test_file` (pass `__file__`), sorted."""
    return sorted((Path(test_file).resolve().parent / folder).glob("*.toml"))


# -- strategy --------------------------------------------------------------------------


def workload(replicas, ready=None, restarts=0, unready_ms=0):
    """A workload; `ready` defaults to all its replicas."""
    return types.Workload(replicas=replicas, ready=replicas if ready is None else ready,
                          restarts=restarts, unready_ms=unready_ms)


def rollout_state(desired=3, stable=None, candidate=None, traffic=None, weight=None,
                  exact_weights=False, step_index=0, time_in_step_ms=0, promoted=False,
                  memory=""):
    """What `next` is told. `stable` is a Workload or None (a first deploy); the
    candidate defaults to no pods; traffic to where a rollout starts (stable, or the
    candidate on a first deploy)."""
    if traffic is None:
        traffic = types.Traffic.STABLE if stable is not None else types.Traffic.CANDIDATE
    return types.RolloutState(
        desired_replicas=desired, stable=stable,
        candidate=candidate if candidate is not None else workload(0),
        traffic=traffic, weight=weight, exact_weights=exact_weights, step_index=step_index,
        time_in_step_ms=time_in_step_ms, promoted=promoted, memory=memory,
    )


# -- validator and template ------------------------------------------------------------


def resources(cpu=None, memory=None, limit_cpu=None, limit_memory=None):
    return types.Resources(requests=types.ResourceAmounts(cpu=cpu, memory=memory),
                           limits=types.ResourceAmounts(cpu=limit_cpu, memory=limit_memory))


_NO_RESOURCES = resources


def env_spec(name="shop", tomcat="10.1", jdk="17", replicas=2, node_num=None, jvm_options="",
             env=(), resources=None, context_path="/"):
    """An env as a user asked for it."""
    return types.EnvSpec(
        name=name, tomcat=tomcat, jdk=jdk, replicas=replicas, node_num=node_num,
        jvm_options=jvm_options, env=list(env), context_path=context_path,
        resources=resources if resources is not None else _NO_RESOURCES(),
    )


def catalog_entry(tomcat="10.1", jdk="17", base_image=None, user=None):
    return types.CatalogEntry(tomcat=tomcat, jdk=jdk, user=user,
                              base_image=base_image or f"warship/tomcat:{tomcat}-jdk{jdk}")


def platform(*entries):
    """The platform; by default a catalog of Tomcat 9.0, 10.1 and 11.0 on JDK 17."""
    if not entries:
        entries = tuple(catalog_entry(tomcat) for tomcat in ("9.0", "10.1", "11.0"))
    return types.Platform(catalog=list(entries))


def war_facts(app="shop", file="shop-1.0.war", size=4704, sha256="0f" * 32,
              servlet_api=None, has_web_xml=True, entries=10):
    return types.WarFacts(
        app=app, file=file, size=size, sha256=sha256, has_web_xml=has_web_xml,
        servlet_api=servlet_api if servlet_api is not None else types.ServletApi.JAKARTA,
        entries=entries,
    )


def build_context(env=None, war=None, base_image="warship/tomcat:10.1-jdk17",
                  base_user="1000:1000", war_file="shop-1.0.war", app_version="1.0",
                  user="alice"):
    """What a template renders from."""
    return types.BuildContext(
        env=env if env is not None else env_spec(), war=war if war is not None else war_facts(),
        base_image=base_image, base_user=base_user, war_file=war_file,
        app_version=app_version, user=user,
    )
