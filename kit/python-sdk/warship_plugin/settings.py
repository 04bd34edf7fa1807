"""Plugin settings, described once as JSON Schema and parsed from that description.

A plugin's settings come from platform.toml as JSON text: `check-config` gets them once
at load, and every other call gets them again. Describe them with the JSON Schema that
`describe` returns, and let `SettingsSchema.parse` check them against it, so what the
schema says and what the plugin accepts cannot drift apart:

    SETTINGS = SettingsSchema({
        "max-restarts": {
            "type": "integer", "minimum": 0, "maximum": 1000, "default": 3,
            "description": "abort when the new pods restarted more often than this, in sum",
        },
    })

    SETTINGS.schema_json()               # for PluginInfo.settings_schema
    s = SETTINGS.parse('{"max-restarts": 5}')
    s.max_restarts                       # 5: keys become attributes, '-' as '_'
    SETTINGS.parse_or_err(text)          # the same, raising Err(message) for the WIT

Every message names the offending key (`max-restarts`, `steps[1].weight`). A property
without a `default` is required. Objects refuse keys they do not describe. The schema
may use only the keywords this module checks (below); any other is refused when the
schema is built, so a schema never promises a check that is not made.

Keywords: type (integer, number, string, boolean, array, object), description, default,
minimum, maximum, exclusiveMinimum, exclusiveMaximum, enum, minLength, maxLength,
pattern, items, minItems, maxItems, properties. Remember the WIT's integer widths when
a value ends up in an answer: a `u32` field takes 0 to 4294967295.
"""

import json
import re
from types import SimpleNamespace

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_KEYWORDS = {
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"},
    "string": {"minLength", "maxLength", "pattern", "enum"},
    "boolean": set(),
    "array": {"items", "minItems", "maxItems"},
    "object": {"properties"},
}
_COMMON = {"type", "description", "default"}


class SettingsError(ValueError):
    """Settings that do not fit the schema; the message names the key."""


def _name(path):
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def _fail(path, message):
    if not path:
        raise SettingsError(f"settings {message}")
    raise SettingsError(f"`{_name(path)}` {message}")


def _got(value):
    return json.dumps(value)


class SettingsSchema:
    """The settings object: its properties' JSON Schemas, by key (kebab-case)."""

    def __init__(self, properties):
        self._schema = {"type": "object", "properties": dict(properties)}
        _check_schema(self._schema, [])

    def schema(self):
        """The whole JSON Schema, as a dict."""
        return _public(self._schema, root=True)

    def schema_json(self):
        """The whole JSON Schema as compact JSON text, for `PluginInfo.settings_schema`."""
        return json.dumps(self.schema(), separators=(",", ":"))

    def defaults(self):
        """Every default, as `parse("")` gives them (raises when some key is required)."""
        return self.parse("")

    def parse(self, text):
        """The settings JSON text ("" means `{}`) checked against the schema, with
        defaults filled in, as a namespace (`settings.max_restarts`). Raises
        SettingsError naming the offending key."""
        if not text.strip():
            data = {}
        else:
            try:
                data = json.loads(text)
            except ValueError as e:
                raise SettingsError(f"settings are not valid JSON: {e}") from None
        if not isinstance(data, dict):
            keys = ", ".join(f'"{k}": ...' for k in list(self._schema["properties"])[:2])
            raise SettingsError(f"settings must be a JSON object, like {{{keys}}} (got {_got(data)})")
        return _value(self._schema, data, [])

    def parse_or_err(self, text):
        """`parse`, raising componentize_py_types.Err(message) instead: the error result
        `check-config`, `next` and `render-dockerfile` answer with."""
        from componentize_py_types import Err

        try:
            return self.parse(text)
        except SettingsError as e:
            raise Err(f"invalid settings: {e}") from None


def _check_schema(schema, path):
    """Refuses a schema using what this module does not check, or a default that does
    not fit its own schema."""
    where = f"the schema of `{_name(path)}`" if path else "the settings schema"
    kind = schema.get("type")
    if kind not in _KEYWORDS:
        raise ValueError(f"{where} needs a type, one of {', '.join(_KEYWORDS)} (got {kind!r})")
    unknown = set(schema) - _COMMON - _KEYWORDS[kind]
    if unknown:
        raise ValueError(
            f"{where} uses {', '.join(sorted(unknown))}, which warship_plugin.settings does not "
            f"check for a {kind}; it checks {', '.join(sorted(_COMMON | _KEYWORDS[kind]))}"
        )
    if kind == "array":
        if "items" not in schema:
            raise ValueError(f"{where} needs `items`, the schema of its elements")
        _check_schema(schema["items"], path + [0])
    if kind == "object":
        for key, sub in schema.get("properties", {}).items():
            _check_schema(sub, path + [key])
    if "pattern" in schema:
        re.compile(schema["pattern"])
    if "default" in schema:
        try:
            _value(schema, schema["default"], path)
        except SettingsError as e:
            raise ValueError(f"{where} has a default that does not fit it: {e}") from None


def _public(schema, root=False):
    """The schema as `describe` shows it: objects closed, properties without a default
    required."""
    out = {"$schema": JSON_SCHEMA_DIALECT} if root else {}
    for key, value in schema.items():
        if key == "properties":
            value = {k: _public(v) for k, v in value.items()}
        elif key == "items":
            value = _public(value)
        out[key] = value
    if schema["type"] == "object":
        out["additionalProperties"] = False
        required = [k for k, v in schema.get("properties", {}).items() if "default" not in v]
        if required:
            out["required"] = required
    return out


def _value(schema, value, path):
    kind = schema["type"]
    check = {
        "integer": _integer, "number": _number, "string": _string,
        "boolean": _boolean, "array": _array, "object": _object,
    }[kind]
    value = check(schema, value, path)
    if "enum" in schema and value not in schema["enum"]:
        _fail(path, f"must be one of {', '.join(_got(v) for v in schema['enum'])} (got {_got(value)})")
    return value


def _range_words(schema):
    low, high = schema.get("minimum"), schema.get("maximum")
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    words = []
    if low is not None and high is not None:
        words.append(f"from {low} to {high}")
    elif low is not None:
        words.append(f"of at least {low}")
    elif high is not None:
        words.append(f"of at most {high}")
    if xlow is not None:
        words.append(f"above {xlow}")
    if xhigh is not None:
        words.append(f"below {xhigh}")
    return " and ".join(words)


def _ranged(schema, value, path, kind, is_kind):
    """The check integers and numbers share: `value` is of its kind (as the caller found)
    and within the schema's bounds, or the message names the kind and the bounds. The
    bounds are compared only once the kind fits, since `"3" < 1` would raise."""
    if not is_kind or (
        ("minimum" in schema and value < schema["minimum"])
        or ("maximum" in schema and value > schema["maximum"])
        or ("exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"])
        or ("exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"])
    ):
        words = _range_words(schema)
        _fail(path, f"must be {kind}{' ' + words if words else ''} (got {_got(value)})")
    return value


def _integer(schema, value, path):
    # bool is an int in Python, yet `true` is no number; 2.0 is an integer in JSON Schema.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    is_integer = isinstance(value, int) and not isinstance(value, bool)
    return _ranged(schema, value, path, "a whole number", is_integer)


def _number(schema, value, path):
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return _ranged(schema, value, path, "a number", is_number)


def _string(schema, value, path):
    if not isinstance(value, str):
        _fail(path, f"must be a string (got {_got(value)})")
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if len(value) < low or (high is not None and len(value) > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        _fail(path, f"must be {span} characters long (got {len(value)})")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        _fail(path, f"must match {schema['pattern']} (got {_got(value)})")
    return value


def _boolean(schema, value, path):
    if not isinstance(value, bool):
        _fail(path, f"must be true or false (got {_got(value)})")
    return value


def _array(schema, value, path):
    if not isinstance(value, list):
        _fail(path, f"must be a list (got {_got(value)})")
    low, high = schema.get("minItems", 0), schema.get("maxItems")
    if len(value) < low or (high is not None and len(value) > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        _fail(path, f"must hold {span} entries (got {len(value)})")
    return [_value(schema["items"], item, path + [i]) for i, item in enumerate(value)]


def _object(schema, value, path):
    properties = schema.get("properties", {})
    if not isinstance(value, dict):
        _fail(path, f"must be an object (got {_got(value)})")
    for key in value:
        if key not in properties:
            known = ", ".join(properties) or "none"
            where = f"setting `{_name(path + [key])}`"
            raise SettingsError(f"unknown {where} (known: {known})")
    out = {}
    for key, sub in properties.items():
        if key in value:
            out[key.replace("-", "_")] = _value(sub, value[key], path + [key])
        elif "default" in sub:
            out[key.replace("-", "_")] = _value(sub, sub["default"], path + [key])
        else:
            _fail(path + [key], "is required")
    return SimpleNamespace(**out)
