//! The CLI's first-day commands against a real `warship serve` (real registry, the
//! local control plane's fake nodes): `warship deploy ENV ./app.war` uploads and deploys
//! in one go, and uploads nothing when the server holds the same bytes; `status --watch`
//! and `env list --watch` show each change as it comes, for scripts (one JSON document
//! a line) and for people (redrawn in place in a real terminal).

use crate::support;

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::cli::{Cli, Terminal, BIN};
use support::host::{config_for, Host};
use support::{big_war, fixture, KubeCluster, Registry};

/// A `--watch` running as a child, its stdout read line by line on a thread.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    fn start(cli: &Cli, args: &[&str]) -> Watcher {
        let mut child = cli.command(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let stdout: Lines<BufReader<ChildStdout>> = BufReader::new(child.stdout.take().unwrap()).lines();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Watcher { child, lines }
    }

    /// Lines until one satisfies `done`; all of them, that one last.
    fn until(&self, what: &str, done: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let found = done(&line);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => panic!("the watch never showed {what}; it showed:\n{}", seen.join("\n")),
            }
        }
    }

    /// Ctrl-C, as a person stops it: it ends with 0.
    fn interrupt(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "a watch stopped by Ctrl-C exits 0");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_war_is_deployed_in_one_command_uploaded_once_and_watched_as_it_changes() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let cluster = KubeCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let (host, tokens) = Host::start(dir.path(), "host", &config_for(&registry, &cluster, ""), &["alice"]);
    let cli = Cli { home: dir.path().join("home") };
    std::fs::create_dir_all(&cli.home).unwrap();
    cli.ok(&["login", &host.base, "--token", &tokens[0]]);
    cli.ok(&["env", "create", "shop", "--tomcat", "10.1", "--jdk", "17"]);

    // The env list, watched by a script: a JSON list a line, again when an env comes.
    let envs = Watcher::start(&cli, &["--output", "json", "env", "list", "--watch", "--interval", "0.2"]);
    envs.until("the first list", |l| l.contains("\"shop\""));
    cli.ok(&["env", "create", "cart", "--tomcat", "10.1", "--jdk", "17"]);
    let seen = envs.until("the new env", |l| l.contains("\"cart\""));
    let names: Vec<String> = serde_json::from_str::<Value>(seen.last().unwrap())
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(seen.len() <= 2, "a list that did not change is not shown again: {seen:?}");
    envs.interrupt();

    // A status watch, as a script reads it, while a local WAR is deployed in one command.
    let status = Watcher::start(&cli, &["--output", "json", "status", "shop", "--watch", "--interval", "0.2"]);
    let first = status.until("the status before any release", |_| true);
    assert!(serde_json::from_str::<Value>(&first[0]).unwrap()["current"].is_null(), "{first:?}");
    let war = fixture("sample.war");
    let out =
        cli.run(&["deploy", "shop", war.to_str().unwrap(), "--version", "1.0", "--strategy", "recreate", "--follow"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("uploaded sample/sample.war (sha256 "), "the upload is said: {stderr}");
    assert!(stdout.contains("succeeded: release 1 of shop serves 1.0"), "{stdout}");
    let views = status.until("release 1 serving", |l| {
        let view: Value = serde_json::from_str(l).unwrap();
        view["current"]["version"] == "1.0" && view["deploying"].is_null()
    });
    assert!(views.len() >= 2, "the watch showed the rollout's changes, not just the end: {views:?}");
    assert!(views.windows(2).all(|w| w[0] != w[1]), "each line is a change");
    status.interrupt();

    // The same bytes again, under the same name and under another: nothing is uploaded.
    let stored = cli.json(&["war", "list"]);
    assert_eq!(stored.as_array().unwrap().len(), 1);
    let out =
        cli.run(&["deploy", "shop", war.to_str().unwrap(), "--version", "1.1", "--strategy", "recreate", "--follow"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is already stored as sample/sample.war") && stderr.contains("not uploading it again"),
        "{stderr}"
    );
    let renamed = dir.path().join("renamed.war");
    std::fs::copy(&war, &renamed).unwrap();
    let deployed =
        cli.json(&["deploy", "shop", renamed.to_str().unwrap(), "--version", "1.2", "--strategy", "recreate"]);
    assert_eq!(deployed["war"], "sample/sample.war", "the stored copy of those bytes is deployed: {deployed}");
    assert_eq!(cli.json(&["war", "list"]), stored, "no upload happened: the same record, the same upload time");
    cli.ok(&["follow", "shop"]);

    // A name that is neither a local file nor stored is the server's to refuse; --app
    // only names a local file's app.
    let (code, said) = cli.fails(&["deploy", "shop", "./missing.war", "--version", "2", "--app", "x"]);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("--app names the app of a local file"), "{said}");

    // For people, in a real terminal: the upload's bar, then the tree redrawn in place.
    let big = dir.path().join("big.war");
    big_war(&big, 100);
    let terminal = Terminal::start(
        &cli,
        "warship-cli-oneshot",
        &format!(
            "cd {} && {BIN} deploy shop ./big.war --version 3.0 --strategy recreate --follow",
            dir.path().display()
        ),
    );
    terminal.wait_for("EXIT=0", Duration::from_secs(180));
    let written = terminal.written();
    assert!(
        written.contains("uploading big.war [") && written.contains("MiB/100.00 MiB"),
        "no progress bar:\n{written}"
    );
    assert!(terminal.screen().contains("succeeded: release 4 of shop serves 3.0"), "{}", terminal.screen());
    drop(terminal);
    let terminal = Terminal::start(&cli, "warship-cli-watch", &format!("{BIN} status shop --watch --interval 0.2"));
    terminal.wait_for("Ctrl-C stops", Duration::from_secs(30));
    terminal.wait_for("release 4 (3.0", Duration::from_secs(30));
    cli.ok(&["env", "update", "shop", "--replicas", "2"]);
    cli.ok(&["deploy", "shop", "big/big.war", "--version", "3.1", "--strategy", "recreate", "--follow"]);
    let screen = terminal.wait_for("release 5 (3.1", Duration::from_secs(30));
    assert_eq!(screen.matches("Ctrl-C stops").count(), 1, "redrawn in place, not scrolled:\n{screen}");
    assert!(terminal.written().contains("\u{1b}[2J"), "the screen is cleared before each view");
    terminal.keys("C-c");
    terminal.wait_for("EXIT=0", Duration::from_secs(10));
}
