//! The Dockerfile subset an image can be assembled from without running anything:
//! FROM, ARG, ENV, LABEL, EXPOSE, USER, WORKDIR, VOLUME, STOPSIGNAL, CMD, ENTRYPOINT
//! and COPY/ADD of files from the build context. Anything else (RUN above all) fails
//! with its line number and the hint that the docker builder can run it.
//!
//! Words follow Docker's rules: `\` escapes outside quotes, single quotes are literal,
//! double quotes keep `\"`, `\\` and `\$`; `$VAR`, `${VAR}`, `${VAR:-default}` and
//! `${VAR:+alt}` expand from ARG and ENV values (and the base image's ENV).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile line {line}: {message}")]
pub struct DockerfileError {
    pub line: usize,
    pub message: String,
}

const DOCKER_HINT: &str = "the oci builder assembles images without running anything; set build.builder = \"docker\" \
                           in platform.toml to build this Dockerfile with a Docker Engine";

/// One instruction as written: its keyword, the rest of its (joined) line, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub line: usize,
    pub keyword: String,
    pub args: String,
}

impl Instruction {
    /// How it reads in the image's history.
    pub fn text(&self) -> String {
        format!("{} {}", self.keyword, self.args)
    }

    fn fail(&self, message: impl Into<String>) -> DockerfileError {
        DockerfileError { line: self.line, message: message.into() }
    }
}

/// A parsed Dockerfile: the base image and the instructions after FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub base: String,
    /// From `FROM --platform=…`, if given.
    pub platform: Option<String>,
    pub steps: Vec<Instruction>,
    /// ARG values declared before FROM, for re-declaration in the stage.
    global_args: BTreeMap<String, String>,
}

/// What an instruction does to the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    User(String),
    Workdir(String),
    Volume(Vec<String>),
    StopSignal(String),
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Copy(Copy),
    /// ARG: only changes what later lines expand.
    Arg,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Names of files in the build context.
    pub sources: Vec<String>,
    /// Absolute path of each copied file in the image, in `sources` order.
    pub targets: Vec<String>,
    pub uid: u64,
    pub gid: u64,
    pub mode: Option<u32>,
}

/// Splits the text into instructions (comments dropped, continuation lines joined) and
/// resolves FROM, with `build_args` overriding the defaults of ARGs before it.
pub fn parse(text: &str, build_args: &BTreeMap<String, String>) -> Result<Dockerfile, DockerfileError> {
    let mut instructions = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = raw.trim_start();
        if trimmed.starts_with('#') {
            if pending.is_none() && trimmed.to_ascii_lowercase().replace(' ', "").starts_with("#escape=") && instructions.is_empty() {
                return Err(DockerfileError { line: number, message: "the escape parser directive is not supported; use the default `\\`".into() });
            }
            continue;
        }
        // Blank lines are skipped, inside a continuation too, as Docker does.
        if trimmed.is_empty() {
            continue;
        }
        let (start, mut text) = pending.take().unwrap_or((number, String::new()));
        let line = raw.trim_end();
        match line.strip_suffix('\\') {
            Some(head) => {
                text.push_str(head);
                pending = Some((start, text));
            }
            None => {
                text.push_str(line);
                instructions.push(split_instruction(start, &text));
            }
        }
    }
    if let Some((start, text)) = pending {
        instructions.push(split_instruction(start, &text));
    }

    let mut global_args = BTreeMap::new();
    let mut iter = instructions.into_iter();
    let from = loop {
        let Some(instruction) = iter.next() else {
            return Err(DockerfileError { line: 1, message: "no FROM line: a Dockerfile starts from a base image".into() });
        };
        match instruction.keyword.as_str() {
            "ARG" => {
                for (name, value) in arg_declarations(&instruction, &global_args)? {
                    let value = build_args.get(&name).cloned().or(value).unwrap_or_default();
                    global_args.insert(name, value);
                }
            }
            "FROM" => break instruction,
            _ => return Err(instruction.fail(format!("{} before FROM: only ARG may come before FROM", instruction.keyword))),
        }
    };
    let mut words = expand_words(&from, &from.args, &global_args)?;
    let mut platform = None;
    while words.first().is_some_and(|w| w.starts_with("--")) {
        let flag = words.remove(0);
        match flag.strip_prefix("--platform=") {
            Some(value) => platform = Some(value.to_owned()),
            None => return Err(from.fail(format!("FROM does not take {flag}"))),
        }
    }
    let base = match words.as_slice() {
        [image] => image.clone(),
        [image, as_kw, _name] if as_kw.eq_ignore_ascii_case("as") => image.clone(),
        _ => return Err(from.fail("FROM takes one image reference (and optionally `AS name`)")),
    };
    let steps: Vec<Instruction> = iter.collect();
    for step in &steps {
        match step.keyword.as_str() {
            "FROM" => {
                return Err(step.fail(format!(
                    "a second FROM makes a multi-stage build; {DOCKER_HINT}"
                )))
            }
            "RUN" | "SHELL" | "ONBUILD" | "HEALTHCHECK" | "MAINTAINER" => {
                return Err(step.fail(format!("{} is not supported: {DOCKER_HINT}", step.keyword)))
            }
            "ARG" | "ENV" | "LABEL" | "EXPOSE" | "USER" | "WORKDIR" | "VOLUME" | "STOPSIGNAL" | "CMD" | "ENTRYPOINT" | "COPY" | "ADD" => {}
            other => return Err(step.fail(format!("unknown instruction {other}"))),
        }
    }
    Ok(Dockerfile { base, platform, steps, global_args })
}

fn split_instruction(line: usize, text: &str) -> Instruction {
    let text = text.trim();
    let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    Instruction { line, keyword: keyword.to_ascii_uppercase(), args: args.trim().to_owned() }
}

/// `ARG a=1 b` → [(a, Some(1)), (b, None)].
fn arg_declarations(instruction: &Instruction, vars: &BTreeMap<String, String>) -> Result<Vec<(String, Option<String>)>, DockerfileError> {
    let words = expand_words(instruction, &instruction.args, vars)?;
    if words.is_empty() {
        return Err(instruction.fail("ARG needs a name"));
    }
    words
        .into_iter()
        .map(|w| {
            let (name, value) = match w.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (w, None),
            };
            if !is_name(&name) {
                return Err(instruction.fail(format!("{name:?} is not a valid ARG name")));
            }
            Ok((name, value))
        })
        .collect()
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Turns the instructions after FROM into actions, in order. `vars` starts as the
/// base image's ENV; `build_args` override ARG defaults.
pub struct Interpreter<'a> {
    vars: BTreeMap<String, String>,
    workdir: String,
    build_args: &'a BTreeMap<String, String>,
    global_args: &'a BTreeMap<String, String>,
}

impl<'a> Interpreter<'a> {
    pub fn new(dockerfile: &'a Dockerfile, base_env: &[String], base_workdir: &str, build_args: &'a BTreeMap<String, String>) -> Self {
        let vars = base_env.iter().filter_map(|e| e.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let workdir = if base_workdir.is_empty() { "/".to_owned() } else { base_workdir.to_owned() };
        Self { vars, workdir, build_args, global_args: &dockerfile.global_args }
    }

    pub fn action(&mut self, step: &Instruction) -> Result<Action, DockerfileError> {
        Ok(match step.keyword.as_str() {
            "ARG" => {
                for (name, default) in arg_declarations(step, &self.vars)? {
                    let value = self
                        .build_args
                        .get(&name)
                        .cloned()
                        .or(default)
                        .or_else(|| self.global_args.get(&name).cloned())
                        .unwrap_or_default();
                    self.vars.insert(name, value);
                }
                Action::Arg
            }
            "ENV" | "LABEL" => {
                let pairs = self.pairs(step)?;
                if step.keyword == "ENV" {
                    for (k, v) in &pairs {
                        self.vars.insert(k.clone(), v.clone());
                    }
                    Action::Env(pairs)
                } else {
                    Action::Label(pairs)
                }
            }
            "EXPOSE" => {
                let ports = self.words(step)?;
                if ports.is_empty() {
                    return Err(step.fail("EXPOSE needs a port"));
                }
                let mut out = Vec::new();
                for port in ports {
                    let (number, protocol) = port.split_once('/').unwrap_or((&port, "tcp"));
                    let protocol = protocol.to_ascii_lowercase();
                    if number.parse::<u16>().map_or(true, |n| n == 0) || !["tcp", "udp", "sctp"].contains(&protocol.as_str()) {
                        return Err(step.fail(format!("{port:?} is not a port: use a number from 1 to 65535, optionally /tcp or /udp")));
                    }
                    out.push(format!("{number}/{protocol}"));
                }
                Action::Expose(out)
            }
            "USER" => match self.words(step)?.as_slice() {
                [user] => Action::User(user.clone()),
                _ => return Err(step.fail("USER takes one user (and optionally :group)")),
            },
            "WORKDIR" => {
                let path = self.single_path(step)?;
                self.workdir = resolve(&self.workdir, &path);
                Action::Workdir(self.workdir.clone())
            }
            "STOPSIGNAL" => match self.words(step)?.as_slice() {
                [signal] => Action::StopSignal(signal.clone()),
                _ => return Err(step.fail("STOPSIGNAL takes one signal")),
            },
            "VOLUME" => {
                let list = match json_array(&step.args) {
                    Some(list) => list.map_err(|e| step.fail(e))?,
                    None => self.words(step)?,
                };
                Action::Volume(list.iter().map(|v| resolve("/", v)).collect())
            }
            "CMD" | "ENTRYPOINT" => {
                let command = match json_array(&step.args) {
                    Some(list) => list.map_err(|e| step.fail(e))?,
                    None if step.args.is_empty() => return Err(step.fail(format!("{} needs a command", step.keyword))),
                    None => vec!["/bin/sh".into(), "-c".into(), step.args.clone()],
                };
                if step.keyword == "CMD" {
                    Action::Cmd(command)
                } else {
                    Action::Entrypoint(command)
                }
            }
            "COPY" | "ADD" => Action::Copy(self.copy(step)?),
            other => return Err(step.fail(format!("unknown instruction {other}"))),
        })
    }

    fn words(&self, step: &Instruction) -> Result<Vec<String>, DockerfileError> {
        expand_words(step, &step.args, &self.vars)
    }

    fn single_path(&self, step: &Instruction) -> Result<String, DockerfileError> {
        match self.words(step)?.as_slice() {
            [path] => Ok(path.clone()),
            _ => Err(step.fail(format!("{} takes one path", step.keyword))),
        }
    }

    /// `KEY=value …`, or the old `KEY value with spaces` form.
    fn pairs(&self, step: &Instruction) -> Result<Vec<(String, String)>, DockerfileError> {
        let first = step.args.split_whitespace().next().unwrap_or("");
        let pairs: Vec<(String, String)> = if !first.is_empty() && !first.contains('=') {
            let rest = step.args[first.len()..].trim();
            let value = expand_words_keeping_spaces(step, rest, &self.vars)?;
            vec![(expand_words(step, first, &self.vars)?.concat(), value)]
        } else {
            self.words(step)?
                .into_iter()
                .map(|w| match w.split_once('=') {
                    Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
                    None => Err(step.fail(format!("{w:?} is not KEY=value"))),
                })
                .collect::<Result<_, _>>()?
        };
        if pairs.is_empty() {
            return Err(step.fail(format!("{} needs KEY=value", step.keyword)));
        }
        for (key, _) in &pairs {
            if key.is_empty() {
                return Err(step.fail("an empty key"));
            }
        }
        Ok(pairs)
    }

    fn copy(&self, step: &Instruction) -> Result<Copy, DockerfileError> {
        let mut args = step.args.trim();
        let (mut uid, mut gid, mut mode) = (0u64, 0u64, None);
        while let Some(rest) = args.strip_prefix("--") {
            let (flag, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            args = after.trim_start();
            let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
            let value = expand_words(step, value, &self.vars)?.concat();
            match name {
                "chown" => {
                    let (u, g) = value.split_once(':').unwrap_or((&value, &value));
                    match (u.parse(), g.parse()) {
                        (Ok(u), Ok(g)) => (uid, gid) = (u, g),
                        _ => {
                            return Err(step.fail(format!(
                                "--chown={value}: give numeric ids (uid:gid): names would need the base image's /etc/passwd, \
                                 which the oci builder never downloads"
                            )))
                        }
                    }
                }
                "chmod" => {
                    mode = Some(u32::from_str_radix(&value, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| step.fail(format!("--chmod={value} is not an octal mode")))?)
                }
                "link" => {}
                "from" => return Err(step.fail(format!("{} --from copies from another stage or image; {DOCKER_HINT}", step.keyword))),
                other => return Err(step.fail(format!("{} does not take --{other}", step.keyword))),
            }
        }
        let words = match json_array(args) {
            Some(list) => list.map_err(|e| step.fail(e))?.into_iter().map(|w| expand_words(step, &w, &self.vars).map(|p| p.concat())).collect::<Result<Vec<_>, _>>()?,
            None => expand_words(step, args, &self.vars)?,
        };
        let Some((dest, sources)) = words.split_last().filter(|(_, s)| !s.is_empty()) else {
            return Err(step.fail(format!("{} needs a source and a destination", step.keyword)));
        };
        for source in sources {
            if step.keyword == "ADD" && source.contains("://") {
                return Err(step.fail(format!("ADD of a URL ({source}) downloads at build time; copy the file into the build context instead")));
            }
            if step.keyword == "ADD" && [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"].iter().any(|ext| source.ends_with(ext)) {
                return Err(step.fail(format!("ADD of an archive ({source}) unpacks it; {DOCKER_HINT}")));
            }
            if source.contains(['*', '?', '[']) {
                return Err(step.fail(format!("{source:?}: wildcards are not supported; name each file")));
            }
        }
        // `.` and `..` name directories even without a trailing slash.
        let into_directory = dest.ends_with('/') || sources.len() > 1 || matches!(dest.rsplit('/').next(), Some("." | ".."));
        let dest = resolve(&self.workdir, dest);
        let targets = sources
            .iter()
            .map(|source| {
                if into_directory {
                    let name = source.rsplit('/').next().unwrap_or(source);
                    resolve(&dest, name)
                } else {
                    dest.clone()
                }
            })
            .collect::<Vec<_>>();
        if targets.iter().any(|t| t == "/") {
            return Err(step.fail("cannot copy a file onto /"));
        }
        Ok(Copy { sources: sources.to_vec(), targets, uid, gid, mode })
    }
}

/// `["a", "b"]` → Some(Ok([a, b])); text not starting with `[` → None.
fn json_array(args: &str) -> Option<Result<Vec<String>, String>> {
    let trimmed = args.trim();
    if !trimmed.starts_with('[') {
        return None;
    }
    Some(serde_json::from_str::<Vec<String>>(trimmed).map_err(|e| format!("not a JSON array of strings: {e}")))
}

/// Joins `path` to `dir` unless absolute, and normalises `.` and `..` (never above `/`).
pub fn resolve(dir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') { path.to_owned() } else { format!("{dir}/{path}") };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Splits `text` into words by Docker's quoting rules, expanding variables.
pub fn expand_words(instruction: &Instruction, text: &str, vars: &BTreeMap<String, String>) -> Result<Vec<String>, DockerfileError> {
    Lexer { chars: text.chars().collect(), at: 0, vars, keep_spaces: false }.words().map_err(|m| instruction.fail(m))
}

/// The whole text as one word: quotes and variables processed, spaces kept.
fn expand_words_keeping_spaces(instruction: &Instruction, text: &str, vars: &BTreeMap<String, String>) -> Result<String, DockerfileError> {
    Ok(Lexer { chars: text.chars().collect(), at: 0, vars, keep_spaces: true }.words().map_err(|m| instruction.fail(m))?.concat())
}

struct Lexer<'a> {
    chars: Vec<char>,
    at: usize,
    vars: &'a BTreeMap<String, String>,
    keep_spaces: bool,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.at += 1;
        c
    }

    fn words(mut self) -> Result<Vec<String>, String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        while let Some(c) = self.next() {
            match c {
                c if c.is_whitespace() && !self.keep_spaces => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                '\\' => {
                    in_word = true;
                    match self.next() {
                        Some(escaped) => word.push(escaped),
                        None => word.push('\\'),
                    }
                }
                '\'' => {
                    in_word = true;
                    loop {
                        match self.next() {
                            Some('\'') => break,
                            Some(c) => word.push(c),
                            None => return Err("a single quote is not closed".into()),
                        }
                    }
                }
                '"' => {
                    in_word = true;
                    loop {
                        match self.next() {
                            Some('"') => break,
                            Some('\\') => match self.peek() {
                                Some(e @ ('"' | '\\' | '$')) => {
                                    self.at += 1;
                                    word.push(e);
                                }
                                _ => word.push('\\'),
                            },
                            Some('$') => word.push_str(&self.variable()?),
                            Some(c) => word.push(c),
                            None => return Err("a double quote is not closed".into()),
                        }
                    }
                }
                '$' => {
                    in_word = true;
                    word.push_str(&self.variable()?);
                }
                c => {
                    in_word = true;
                    word.push(c);
                }
            }
        }
        if in_word {
            words.push(word);
        }
        Ok(words)
    }

    /// After a `$`: `NAME`, `{NAME}`, `{NAME:-word}`, `{NAME:+word}`; a lone `$` stays.
    fn variable(&mut self) -> Result<String, String> {
        if self.peek() == Some('{') {
            self.at += 1;
            let mut name = String::new();
            while let Some(c) = self.peek().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
                name.push(c);
                self.at += 1;
            }
            let value = self.vars.get(&name).cloned().unwrap_or_default();
            match self.next() {
                Some('}') => Ok(value),
                Some(':') => {
                    let op = self.next();
                    let mut word = String::new();
                    loop {
                        match self.next() {
                            Some('}') => break,
                            Some('$') => word.push_str(&self.variable()?),
                            Some(c) => word.push(c),
                            None => return Err(format!("${{{name}:… is not closed")),
                        }
                    }
                    match op {
                        Some('-') => Ok(if value.is_empty() { word } else { value }),
                        Some('+') => Ok(if value.is_empty() { String::new() } else { word }),
                        _ => Err(format!("${{{name}:…}}: only :- and :+ are supported")),
                    }
                }
                _ => Err(format!("${{{name} is not closed")),
            }
        } else {
            let mut name = String::new();
            while let Some(c) = self.peek().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
                name.push(c);
                self.at += 1;
            }
            if name.is_empty() {
                Ok("$".into())
            } else {
                Ok(self.vars.get(&name).cloned().unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
#[path = "dockerfile_tests.rs"]
mod tests;
