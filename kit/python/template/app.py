"""{{name}}: a warship Dockerfile template plugin in Python.

A template renders the Dockerfile that turns a WAR into an image (`render_dockerfile`),
from the build's context: the env, the WAR's facts, the catalog's base image and user.
warship builds it without a Docker daemon, so only instructions that run nothing are
allowed: FROM, LABEL, ENV, COPY, EXPOSE, USER (no RUN). The image is the base image plus
one layer holding the WAR.

Every value comes from users or admins, so none may break out of its place: line breaks
are refused, quoted values escaped, and unquoted ones must be single plain words.

The contract is the `template` world of `wit/plugin.wit`. Calls are pure functions of
their arguments: no clock, files, network or memory between calls. An error result is
raised as `Err(message)`. `Plugin` and `Render` are the glue, named after the WIT
interfaces the world exports, as componentize-py requires.
"""

import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

from warship_plugin.settings import SettingsSchema

NAME = "{{name}}"
VERSION = "0.1.0"

SETTINGS = SettingsSchema({
    "webapps-dir": {
        "type": "string", "pattern": "^/[^\\s\"'$\\\\]*$", "default": "/usr/local/tomcat/webapps",
        "description": "the directory the base image's Tomcat deploys WARs from",
    },
    "port": {
        "type": "integer", "minimum": 1, "maximum": 65535, "default": 8080,
        "description": "the port Tomcat listens on, as EXPOSEd by the image",
    },
})


class RenderError(ValueError):
    """A value that cannot go into a Dockerfile; the message says which and why."""


def _one_line(what, value):
    if any(c in value for c in "\n\r\0"):
        raise RenderError(f"the {what} {value!r} contains a line break or NUL, which no Dockerfile line can hold")


def _word(what, value):
    # A leading '-' would read as a flag (`FROM --platform=...`).
    if not value or value.startswith("-") or re.search(r"[\s\"'\\$]", value):
        raise RenderError(f"the {what} {value!r} must be one word: not empty, not starting "
                          "with '-', without whitespace, quotes, '\\' or '$'")


def _quote(value):
    """A double-quoted Dockerfile value: `\\`, `"` and `$` escaped."""
    return '"' + re.sub(r'([\\"$])', r"\\\1", value) + '"'


def _context_file(path):
    """Tomcat names a WAR's context after its file: ROOT.war serves `/`, a `#` stands for
    a `/` (`shop#v2.war` serves `/shop/v2`)."""
    if path == "/":
        return "ROOT"
    segments = path[1:].split("/") if path.startswith("/") else []
    if not segments or not all(s not in ("", ".", "..") and re.fullmatch(r"[A-Za-z0-9._-]+", s)
                               for s in segments):
        raise RenderError(f"the context path {path!r} names no Tomcat context: use \"/\" or "
                          "'/'-separated segments of letters, digits, '.', '_' and '-'")
    return "#".join(segments)


def render(settings, ctx):
    """The Dockerfile text; RenderError says which value cannot go in."""
    env, war = ctx.env, ctx.war
    user = ctx.base_user or None
    for what, value in [("user", ctx.user), ("env name", env.name), ("app version", ctx.app_version),
                        ("base image", ctx.base_image), ("WAR app name", war.app),
                        ("jvm options", env.jvm_options), ("WAR file", ctx.war_file),
                        ("context path", env.context_path), ("base user", user or "")]:
        _one_line(what, value)
    _word("base image", ctx.base_image)
    # COPY reads a leading '[' as its JSON form: plain file names only.
    if not re.fullmatch(r"[A-Za-z0-9._-]+", ctx.war_file) or ctx.war_file in (".", ".."):
        raise RenderError(f"the WAR file {ctx.war_file!r} must be a plain file name "
                          "(letters, digits, '.', '_', '-')")
    if user is not None:
        _word("base user", user)
    context = _context_file(env.context_path)

    lines = [
        f"# Rendered by {NAME} {VERSION} for {ctx.user}/{env.name} {ctx.app_version}",
        f"FROM {ctx.base_image}",
        f"LABEL org.opencontainers.image.title={_quote(war.app)} "
        f"org.opencontainers.image.version={_quote(ctx.app_version)} "
        f"dev.warship.war.sha256={_quote(war.sha256)} dev.warship.env={_quote(env.name)}",
    ]
    if env.jvm_options:
        lines.append(f"ENV JAVA_OPTS={_quote(env.jvm_options)}")
    lines.append(f"COPY {ctx.war_file} {settings.webapps_dir.rstrip('/')}/{context}.war")
    lines.append(f"EXPOSE {settings.port}")
    if user is not None:
        lines.append(f"USER {user}")
    return "\n".join(lines) + "\n"


class Plugin(exports.Plugin):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(name=NAME, version=VERSION, settings_schema=SETTINGS.schema_json())

    def check_config(self, settings: str) -> None:
        SETTINGS.parse_or_err(settings)


class Render(exports.Render):
    def render_dockerfile(self, settings: str, context: types.BuildContext) -> str:
        parsed = SETTINGS.parse_or_err(settings)
        try:
            return render(parsed, context)
        except RenderError as e:
            raise Err(str(e))
