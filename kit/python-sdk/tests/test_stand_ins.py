"""The stand-ins against bindings componentize-py generates afresh from wit/0.2.0, for
each world: every type's name, fields and field types, every enum's members, the
`Action` cases, and every exported method's parameters.

Needs componentize-py 0.25.1 (found as $COMPONENTIZE_PY, on PATH, or in the venv
warship's build uses); skipped without it. `cd kit/python-sdk && python3 -m unittest
discover -s tests`.
"""

import dataclasses
import enum
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import typing
import unittest
from pathlib import Path

from warship_plugin import stand_ins

WIT = Path(__file__).resolve().parents[3] / "wit" / "0.2.0"
WORLDS = {"strategy": ["plugin", "rollout"], "validator": ["plugin", "validate"],
          "template": ["plugin", "render"]}


def componentize_py():
    cache = Path(os.environ.get("WARSHIP_CACHE", Path.home() / ".cache" / "warship"))
    for candidate in (os.environ.get("COMPONENTIZE_PY"), shutil.which("componentize-py"),
                      cache / "venv-componentize-py-0.25.1" / "bin" / "componentize-py"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


def annotation(a):
    """A type annotation in words that do not depend on module names."""
    if isinstance(a, type):
        return a.__name__
    args = ", ".join(annotation(x) for x in typing.get_args(a))
    origin = typing.get_origin(a)
    return f"{getattr(origin, '__name__', None) or str(origin)}[{args}]"


def shapes(classes, action, protocols):
    out = {}
    for value in classes:
        if dataclasses.is_dataclass(value):
            out[value.__name__] = {f.name: annotation(f.type) for f in dataclasses.fields(value)}
        elif issubclass(value, enum.Enum):
            out[value.__name__] = {m.name: m.value for m in value}
    out["Action"] = [annotation(a) for a in typing.get_args(action)]
    for protocol in protocols:
        out[f"exports.{protocol.__name__}"] = {
            m: list(inspect.signature(getattr(protocol, m)).parameters)
            for m in sorted(vars(protocol)) if not m.startswith("_") and callable(getattr(protocol, m))
        }
    return out


GENERATED = """
import json, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import test_stand_ins as t
from wit_world.imports import types
from wit_world import exports
import componentize_py_types as c
classes = [v for v in vars(types).values() if isinstance(v, type) and v.__module__ == types.__name__]
protocols = [getattr(exports, i.capitalize()) for i in sys.argv[3].split(",")]
out = t.shapes(classes, types.Action, protocols)
out["componentize_py_types"] = sorted(n for n in ("Some", "Ok", "Err", "Result") if hasattr(c, n))
out["Err is an Exception"] = issubclass(c.Err, Exception)
print(json.dumps(out))
"""


@unittest.skipUnless(componentize_py(), "componentize-py 0.25.1 not found")
class AgainstGenerated(unittest.TestCase):
    def test_every_world(self):
        ours = shapes(stand_ins.TYPES, stand_ins.Action, stand_ins.EXPORTS.values())
        ours["componentize_py_types"] = ["Err", "Ok", "Result", "Some"]
        ours["Err is an Exception"] = issubclass(stand_ins.Err, Exception)
        for world, interfaces in WORLDS.items():
            with self.subTest(world=world), tempfile.TemporaryDirectory() as out:
                subprocess.run([componentize_py(), "-d", str(WIT), "-w", world, "bindings", out],
                               check=True, capture_output=True)
                here = str(Path(__file__).resolve().parent)
                sdk = str(Path(__file__).resolve().parents[1])
                run = subprocess.run(
                    [sys.executable, "-c", GENERATED, here, out, ",".join(interfaces)],
                    check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": sdk})
                generated = json.loads(run.stdout)
                wanted = {k: v for k, v in ours.items()
                          if not k.startswith("exports.") or k[8:].lower() in interfaces}
                self.assertEqual(generated, wanted)


if __name__ == "__main__":
    unittest.main()
