"""Stand-ins for the modules componentize-py 0.25.1 generates from `wit/plugin.wit`
(contract 0.2.0), so that a plugin's `app.py`, which imports the generated bindings,
imports unchanged under plain CPython for unit tests.

Every record, enum and variant case of the WIT's `types` interface is here, named and
shaped exactly as componentize-py writes it into `wit_world.imports.types`: records are
dataclasses with snake_case fields, enums are `Enum`s with UPPER_CASE members numbered
from 0, a variant is a `Union` of one dataclass per case (`Action_Scale(value)`,
`Action_Done()`), `option<T>` is `Optional[T]`, integers are `int`. An error result is
raised as `componentize_py_types.Err(value)`. `tests/test_stand_ins.py` compares all of
it against bindings generated afresh.

`install_stand_ins()` registers them in `sys.modules` when the real modules are absent
(`warship_plugin.testing` calls it on import). The component never uses this file: the
build generates the real modules, and `app.py` should not import it.
"""

import sys
from dataclasses import dataclass
from enum import Enum
from types import ModuleType
from abc import abstractmethod
from typing import Generic, List, Optional, Protocol, Tuple, TypeVar, Union

# ---------------------------------------------------------------------------
# componentize_py_types
# ---------------------------------------------------------------------------

S = TypeVar("S")
T = TypeVar("T")
E = TypeVar("E")


@dataclass
class Some(Generic[S]):
    """The present case of a nested `option` (plain options are `Optional`)."""

    value: S


@dataclass
class Ok(Generic[T]):
    """The success case of a `result` value."""

    value: T


@dataclass(frozen=True)
class Err(Generic[E], Exception):
    """The failure case of a `result`: raise `Err("message")` to answer an error."""

    value: E


Result = Union[Ok[T], Err[E]]

# ---------------------------------------------------------------------------
# wit_world.imports.types: interface `types`, in the WIT's order
# ---------------------------------------------------------------------------


@dataclass
class PluginInfo:
    name: str
    version: str
    settings_schema: str


@dataclass
class Violation:
    field: str
    code: str
    message: str


@dataclass
class ResourceAmounts:
    cpu: Optional[str]
    memory: Optional[str]


@dataclass
class Resources:
    requests: ResourceAmounts
    limits: ResourceAmounts


@dataclass
class EnvSpec:
    name: str
    tomcat: str
    jdk: str
    replicas: int
    node_num: Optional[str]
    jvm_options: str
    env: List[Tuple[str, str]]
    resources: Resources
    context_path: str


@dataclass
class CatalogEntry:
    tomcat: str
    jdk: str
    base_image: str
    user: Optional[str]


@dataclass
class Platform:
    catalog: List[CatalogEntry]


class ServletApi(Enum):
    JAVAX = 0
    JAKARTA = 1
    MIXED = 2
    UNKNOWN = 3


@dataclass
class WarFacts:
    app: str
    file: str
    size: int
    sha256: str
    servlet_api: ServletApi
    has_web_xml: bool
    entries: int


@dataclass
class BuildContext:
    env: EnvSpec
    war: WarFacts
    base_image: str
    base_user: Optional[str]
    war_file: str
    app_version: str
    user: str


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
    weight: Optional[int]
    exact_weights: bool
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
class Action_SetWeight:
    value: int


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


Action = Union[
    Action_Scale,
    Action_SwitchTraffic,
    Action_SetWeight,
    Action_WaitReady,
    Action_Pause,
    Action_AwaitPromotion,
    Action_Done,
    Action_Abort,
]


@dataclass
class Step:
    action: Action
    step_index: int
    description: str
    memory: str


TYPES = (
    PluginInfo, Violation, ResourceAmounts, Resources, EnvSpec, CatalogEntry, Platform,
    ServletApi, WarFacts, BuildContext, Workload, Traffic, RolloutState, ScaleTo,
    Action_Scale, Action_SwitchTraffic, Action_SetWeight, Action_WaitReady, Action_Pause,
    Action_AwaitPromotion, Action_Done, Action_Abort, Step,
)

# ---------------------------------------------------------------------------
# wit_world.exports: one protocol per exported interface. The real module holds only
# those of the world built (`plugin` and `rollout` for a strategy, `validate` for a
# validator, `render` for a template); these stand-ins hold all four.
# ---------------------------------------------------------------------------


class Plugin(Protocol):
    @abstractmethod
    def describe(self) -> PluginInfo:
        raise NotImplementedError

    @abstractmethod
    def check_config(self, settings: str) -> None:
        """Raises `Err(str)` naming the bad key."""
        raise NotImplementedError


class Rollout(Protocol):
    @abstractmethod
    def next(self, settings: str, state: RolloutState) -> Step:
        """Raises `Err(str)`."""
        raise NotImplementedError


class Validate(Protocol):
    @abstractmethod
    def validate_env(self, settings: str, platform: Platform, env: EnvSpec) -> List[Violation]:
        raise NotImplementedError

    @abstractmethod
    def validate_deploy(
        self, settings: str, platform: Platform, env: EnvSpec, war: WarFacts
    ) -> List[Violation]:
        raise NotImplementedError


class Render(Protocol):
    @abstractmethod
    def render_dockerfile(self, settings: str, context: BuildContext) -> str:
        """Raises `Err(str)`."""
        raise NotImplementedError


EXPORTS = {"plugin": Plugin, "rollout": Rollout, "validate": Validate, "render": Render}


class WitWorld(Protocol):
    pass


def _module(name, doc, **members):
    module = ModuleType(name, doc)
    for key, value in members.items():
        setattr(module, key, value)
        if isinstance(value, type) and value.__module__ == __name__:
            value.__module__ = name
    return module


def install_stand_ins(force=False):
    """Registers `componentize_py_types`, `wit_world`, `wit_world.imports`,
    `wit_world.imports.types` and `wit_world.exports` in `sys.modules`, unless the real
    generated modules import (`PYTHONPATH=<bindings dir>`) and not `force`. Returns True
    when the stand-ins are in use, False for the real bindings. Calling it again changes
    nothing."""
    global _TYPES_MODULE
    present = sys.modules.get("wit_world.imports.types")
    if present is not None and not force:
        return present is _TYPES_MODULE
    if not force:
        try:
            import componentize_py_types  # noqa: F401
            import wit_world.imports.types  # noqa: F401
            return False
        except ImportError:
            pass
    cpt = _module("componentize_py_types", _DOC, Some=Some, Ok=Ok, Err=Err, Result=Result)
    types = _module("wit_world.imports.types", _DOC, Action=Action,
                    **{cls.__name__: cls for cls in TYPES})
    imports = _module("wit_world.imports", _DOC, types=types)
    submodules = {key: _module(f"wit_world.exports.{key}", _DOC) for key in EXPORTS}
    exports = _module("wit_world.exports", _DOC,
                      **{cls.__name__: cls for cls in EXPORTS.values()}, **submodules)
    world = _module("wit_world", _DOC, WitWorld=WitWorld, imports=imports, exports=exports)
    for module in (cpt, world, imports, types, exports, *submodules.values()):
        sys.modules[module.__name__] = module
    _TYPES_MODULE = types
    return True


_DOC = "Stand-in for a module componentize-py generates (warship_plugin.stand_ins)."
_TYPES_MODULE = None
