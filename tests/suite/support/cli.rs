//! The `warship` CLI as a user runs it, for the CLI's tests: the real binary with a
//! config home of its own, and a real terminal (tmux) to run it in.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_warship");

/// The CLI as a user runs it: its own config home, no server or token in the environment.
pub struct Cli {
    pub home: PathBuf,
}

impl Cli {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env_remove("WARSHIP_URL")
            .env_remove("WARSHIP_TOKEN")
            .env_remove("RUST_BACKTRACE");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and expects exit code `code`; stdout.
    pub fn expect(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "warship {}\nstdout: {}\nstderr: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.expect(0, args)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Exit code and stderr of a command that fails.
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        (out.status.code().unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A tmux session of 160×40 running `script`, everything it writes to the terminal
/// also piped to a file.
pub struct Terminal {
    name: String,
    log: PathBuf,
}

impl Terminal {
    pub fn start(cli: &Cli, name: &str, script: &str) -> Terminal {
        let log = cli.home.join(format!("{name}.tty"));
        let path = std::env::var("PATH").unwrap();
        let env = format!(
            "export HOME={home} XDG_CONFIG_HOME={home}/config PATH={path} TERM=xterm-256color; unset NO_COLOR WARSHIP_URL WARSHIP_TOKEN",
            home = cli.home.display()
        );
        // The pane starts a shell that waits, so the pipe is in place before the script runs.
        // A tmux server exits with its last session; a session started in that moment (by
        // another test) fails with "server exited unexpectedly", so it is tried again.
        let started = (0..5).any(|attempt| {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(300));
            }
            let new = [
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "160",
                "-y",
                "40",
                "sh",
                "-c",
                "read go; eval \"$go\"; sleep 30",
            ];
            Command::new("tmux").args(new).status().unwrap().success()
        });
        assert!(started, "tmux could not start session {name}");
        let status = Command::new("tmux")
            .args(["pipe-pane", "-o", "-t", name, &format!("cat >> {}", log.display())])
            .status()
            .unwrap();
        assert!(status.success());
        // The shell traps Ctrl-C so it outlives the command it runs and reports its exit.
        let status = Command::new("tmux")
            .args(["send-keys", "-t", name, &format!("{env}; trap true INT; {script}; echo EXIT=$?"), "Enter"])
            .status()
            .unwrap();
        assert!(status.success());
        Terminal { name: name.to_owned(), log }
    }

    /// What the pane shows now.
    pub fn screen(&self) -> String {
        let out = Command::new("tmux").args(["capture-pane", "-p", "-t", &self.name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Everything written to the terminal so far, escapes included.
    pub fn written(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub fn keys(&self, keys: &str) {
        assert!(Command::new("tmux").args(["send-keys", "-t", &self.name, keys]).status().unwrap().success());
    }

    pub fn wait_for(&self, text: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                started.elapsed() < timeout,
                "the terminal never showed {text:?}:\n{screen}\n--- written:\n{}",
                self.written()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).status();
    }
}
