"""Unit tests under plain CPython: `python3 -m unittest`.

`warship_plugin.testing` stands in for the bindings componentize-py generates and
builds what the host passes (`build_context`, `env_spec`, `war_facts`).
"""

import json
import unittest

from warship_plugin.testing import Err, build_context, env_spec

import app

SHA = "0f" * 32


class Render(unittest.TestCase):
    def test_root_context(self):
        ctx = build_context(env=env_spec(jvm_options='-Xmx512m -Dgreeting="hi $USER"'))
        self.assertEqual(app.Render().render_dockerfile("", ctx), (
            "# Rendered by {{name}} 0.1.0 for alice/shop 1.0\n"
            "FROM warship/tomcat:10.1-jdk17\n"
            'LABEL org.opencontainers.image.title="shop" org.opencontainers.image.version="1.0" '
            f'dev.warship.war.sha256="{SHA}" dev.warship.env="shop"\n'
            'ENV JAVA_OPTS="-Xmx512m -Dgreeting=\\"hi \\$USER\\""\n'
            "COPY shop-1.0.war /usr/local/tomcat/webapps/ROOT.war\n"
            "EXPOSE 8080\n"
            "USER 1000:1000\n"
        ))

    def test_no_instruction_runs_anything(self):
        text = app.Render().render_dockerfile("", build_context())
        kinds = {line.split()[0] for line in text.splitlines() if not line.startswith("#")}
        self.assertLessEqual(kinds, {"FROM", "LABEL", "ENV", "COPY", "EXPOSE", "USER"})

    def test_nested_context_other_port_no_user(self):
        ctx = build_context(env=env_spec(context_path="/shop/v2"), base_user=None)
        text = app.Render().render_dockerfile('{"port": 9090}', ctx)
        self.assertIn("COPY shop-1.0.war /usr/local/tomcat/webapps/shop#v2.war\n", text)
        self.assertIn("EXPOSE 9090\n", text)
        self.assertNotIn("USER", text)

    def test_values_that_would_break_out_are_refused(self):
        for ctx, said in [
            (build_context(env=env_spec(jvm_options="-Xmx1g\nRUN rm -rf /")), "jvm options"),
            (build_context(base_image="alpine --platform=x"), "base image"),
            (build_context(war_file="[x].war"), "WAR file"),
            (build_context(env=env_spec(context_path="/../etc")), "context path"),
        ]:
            with self.assertRaises(Err, msg=said) as e:
                app.Render().render_dockerfile("", ctx)
            self.assertIn(said, e.exception.value)


class Glue(unittest.TestCase):
    def test_describe(self):
        info = app.Plugin().describe()
        self.assertEqual(info.name, "{{name}}")
        self.assertEqual(sorted(json.loads(info.settings_schema)["properties"]), ["port", "webapps-dir"])

    def test_check_config_names_the_key(self):
        for text, key in [('{"port": 0}', "port"), ('{"webapps-dir": "relative"}', "webapps-dir"),
                          ('{"ports": 80}', "ports")]:
            with self.assertRaises(Err, msg=text) as e:
                app.Plugin().check_config(text)
            self.assertIn(f"`{key}`", e.exception.value)


if __name__ == "__main__":
    unittest.main()
