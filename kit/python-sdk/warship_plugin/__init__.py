"""warship_plugin: the Python plugin kit's small library, for plugins built with
componentize-py against warship's contract 0.2.0 (`wit/plugin.wit`).

- `warship_plugin.settings`: settings described once as JSON Schema, parsed from it,
  errors naming the key. The one module meant for `app.py` (it runs in the component).
- `warship_plugin.testing`: for unit tests under plain CPython: stand-ins for the
  generated bindings (installed on import), factories for what the host passes, the
  fake host and scenario files.
- `warship_plugin.stand_ins`, `warship_plugin.fakehost`, `warship_plugin.scenario`: what
  `testing` gathers.

Standard library only (Python 3.11). Nothing here is imported by importing the package.
"""

CONTRACT = "0.2.0"
