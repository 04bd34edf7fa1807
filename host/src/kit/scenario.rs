//! Scenario files: one scripted rollout each, for `warship plugin test`. A team keeps
//! them beside its plugin (`scenarios/*.toml`) so its CI runs them; without any, the
//! command runs the built-in set below.
//!
//! ```toml
//! description = "the new pods crash; the strategy gives up"   # optional
//! desired = 4              # replicas the env asks for (default 3)
//! stable = 4               # pods of the serving release; 0 = a first deploy (default: desired)
//! exact-weights = false    # the env's route splits requests by exact weights
//! settings = { max-restarts = 2 }   # the plugin's settings, laid over --settings
//! pods = "crash-loop"      # healthy | slow-ready | never-ready | crash-loop
//! ready-after-seconds = 20 # slow-ready: how long each new pod stays unready
//! promote-after-seconds = 5          # someone promotes a step that awaits it; leave out: nobody does
//! abort-after-seconds = 30           # a user aborts this long after the rollout began
//! restart-host-after-calls = 3       # the host goes down after persisting this answer; a new one resumes
//! [expect]
//! end = "aborted"          # done | aborted | failed | awaiting-promotion | aborted-by-user (default done)
//! reason = "restarted"     # text the strategy's or the host's reason contains
//! min-serving = 4          # pods serving requests never fewer than this
//! ```

use std::path::Path;

/// `warship plugin test --help`'s tail: the scenario format and the built-in set.
pub const HELP: &str = "\
A strategy passes a scenario when its rollout ends as the scenario expects (default: done),
with the reason it expects, and never fewer pods serving than its min-serving. It fails when
the rollout never ends (500 calls), an answer changes nothing (the host would ask again at
once, for ever), a call fails or breaks its memory or deadline limit, or the host refuses an
answer. Exit codes: 0 all passed, 1 a scenario failed, 2 a mistake in the command or a file.

Without --scenario, the built-in set: healthy, slow-ready (new pods ready after 20 s),
never-ready and crash-loop (the strategy must abort), promotion (a promotion after 2 min),
abort (a user aborts 10 s in), host-restart (a new host resumes after the 3rd answer).

A scenario file (TOML; every key optional):
  description = \"the new pods crash; the strategy gives up\"
  desired = 4              # replicas the env asks for (default 3)
  stable = 4               # pods of the serving release; 0 = a first deploy (default: desired)
  exact-weights = false    # the env's route splits requests by exact weights
  settings = { max-restarts = 2 }   # the plugin's settings, laid over --settings
  pods = \"crash-loop\"      # healthy | slow-ready | never-ready | crash-loop
  ready-after-seconds = 20 # slow-ready: how long each new pod stays unready
  promote-after-seconds = 5          # someone promotes a step that awaits it; leave out: nobody
  abort-after-seconds = 30           # a user aborts this long after the rollout began
  restart-host-after-calls = 3       # the host goes down after persisting this answer
  [expect]
  end = \"aborted\"          # done | aborted | failed | awaiting-promotion | aborted-by-user
  reason = \"restarted\"     # text the strategy's or the host's reason contains
  min-serving = 4          # pods serving requests never fewer than this

Validators and templates: --env FILE (the env spec and the platform's [[catalog]]) and
--war FILE (the WAR's facts and the deploy's version); docs/plugins.md has their keys.";

use serde::Deserialize;

use super::KitError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    /// The file's stem, or the built-in's name.
    #[serde(skip)]
    pub name: String,
    pub description: Option<String>,
    pub desired: Option<u32>,
    pub stable: Option<u32>,
    #[serde(default)]
    pub exact_weights: bool,
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub pods: PodScript,
    pub ready_after_seconds: Option<u64>,
    pub promote_after_seconds: Option<u64>,
    pub abort_after_seconds: Option<u64>,
    pub restart_host_after_calls: Option<usize>,
    #[serde(default)]
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PodScript {
    #[default]
    Healthy,
    SlowReady,
    NeverReady,
    CrashLoop,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expect {
    #[serde(default)]
    pub end: Ending,
    pub reason: Option<String>,
    pub min_serving: Option<u32>,
}

/// How a scenario's rollout should end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    #[default]
    Done,
    /// The strategy gave up.
    Aborted,
    /// The host refused an answer, or a call failed or broke a limit.
    Failed,
    AwaitingPromotion,
    AbortedByUser,
}

impl Ending {
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Done => "done",
            Ending::Aborted => "aborted",
            Ending::Failed => "failed",
            Ending::AwaitingPromotion => "awaiting-promotion",
            Ending::AbortedByUser => "aborted-by-user",
        }
    }
}

/// The default desired replicas, and the stable release's when a scenario gives none.
pub const DEFAULT_DESIRED: u32 = 3;
/// How long a slow-ready pod stays unready when the scenario does not say.
const DEFAULT_READY_AFTER_SECONDS: u64 = 20;

impl Scenario {
    pub fn read(path: &Path) -> Result<Self, KitError> {
        let text = std::fs::read_to_string(path).map_err(|e| KitError::io(path, e))?;
        let mut scenario: Scenario =
            toml::from_str(&text).map_err(|e| KitError::Usage(format!("scenario {}: {e}", path.display())))?;
        scenario.name = path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned());
        scenario.check().map_err(|e| KitError::Usage(format!("scenario {}: {e}", path.display())))?;
        Ok(scenario)
    }

    fn check(&self) -> Result<(), String> {
        if self.ready_after_seconds.is_some() && self.pods != PodScript::SlowReady {
            return Err("ready-after-seconds is for pods = \"slow-ready\"".into());
        }
        if self.desired == Some(0) {
            return Err("desired must be at least 1".into());
        }
        Ok(())
    }

    pub fn desired(&self) -> u32 {
        self.desired.unwrap_or(DEFAULT_DESIRED)
    }

    /// The serving release's pods; `None` on a first deploy.
    pub fn stable(&self) -> Option<u32> {
        match self.stable.unwrap_or(self.desired()) {
            0 => None,
            n => Some(n),
        }
    }

    pub fn ready_after_ms(&self) -> u64 {
        self.ready_after_seconds.unwrap_or(DEFAULT_READY_AFTER_SECONDS) * 1000
    }

    /// One line saying what the scenario scripts.
    pub fn summary(&self) -> String {
        let mut parts = vec![match self.stable() {
            Some(stable) => format!("{stable} stable pods → {} new", self.desired()),
            None => format!("first deploy of {}", self.desired()),
        }];
        parts.push(match self.pods {
            PodScript::Healthy => "pods healthy".into(),
            PodScript::SlowReady => format!("pods ready after {} s", self.ready_after_ms() / 1000),
            PodScript::NeverReady => "pods never ready".into(),
            PodScript::CrashLoop => "pods crash-looping".into(),
        });
        if self.exact_weights {
            parts.push("exact weights".into());
        }
        match self.promote_after_seconds {
            Some(s) => parts.push(format!("promoted after {s} s")),
            None => parts.push("nobody promotes".into()),
        }
        if let Some(s) = self.abort_after_seconds {
            parts.push(format!("a user aborts at {s} s"));
        }
        if let Some(n) = self.restart_host_after_calls {
            parts.push(format!("the host restarts after call {n}"));
        }
        if !self.settings.is_empty() {
            parts.push(format!("settings {}", serde_json::Value::Object(self.settings.clone())));
        }
        parts.join(", ")
    }
}

/// The scenarios `plugin test` runs when given no files: the situations every strategy
/// meets, with the endings any sound strategy reaches.
pub fn builtin() -> Vec<Scenario> {
    let base = |name: &str, description: &str| Scenario {
        name: name.into(),
        description: Some(description.into()),
        promote_after_seconds: Some(5),
        ..Scenario::default()
    };
    let ending = |end| Expect { end, ..Expect::default() };
    vec![
        base("healthy", "every new pod starts and gets ready; someone promotes after 5 s"),
        Scenario { pods: PodScript::SlowReady, ..base("slow-ready", "new pods take 20 s to get ready") },
        Scenario {
            pods: PodScript::NeverReady,
            expect: ending(Ending::Aborted),
            ..base("never-ready", "new pods never get ready: the strategy must give up")
        },
        Scenario {
            pods: PodScript::CrashLoop,
            expect: ending(Ending::Aborted),
            ..base("crash-loop", "new pods crash again and again: the strategy must give up")
        },
        Scenario {
            promote_after_seconds: Some(120),
            ..base("promotion", "a step that awaits promotion waits 2 minutes for it")
        },
        Scenario {
            // Slow pods keep any strategy busy past the abort.
            pods: PodScript::SlowReady,
            abort_after_seconds: Some(10),
            expect: ending(Ending::AbortedByUser),
            ..base("abort", "a user aborts 10 s in, while new pods are starting: the host restores the stable release")
        },
        Scenario { restart_host_after_calls: Some(3), ..base("host-restart", "the host goes down after the 3rd answer; another resumes") },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        scenario.check()?;
        Ok(scenario)
    }

    #[test]
    fn a_whole_scenario_reads_with_its_defaults() {
        let s = parse(
            r#"
            desired = 4
            settings = { max-restarts = 2 }
            pods = "crash-loop"
            restart-host-after-calls = 3
            [expect]
            end = "aborted"
            reason = "restarted"
            min-serving = 4
            "#,
        )
        .unwrap();
        assert_eq!((s.desired(), s.stable(), s.pods), (4, Some(4), PodScript::CrashLoop));
        assert_eq!(s.settings["max-restarts"], 2);
        assert_eq!((s.expect.end, s.expect.min_serving), (Ending::Aborted, Some(4)));
        assert_eq!(parse("").unwrap().expect.end, Ending::Done);
    }

    #[test]
    fn stable_zero_is_a_first_deploy() {
        assert_eq!(parse("stable = 0").unwrap().stable(), None);
        assert!(parse("stable = 0").unwrap().summary().starts_with("first deploy of 3"));
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse("pods = \"flaky\"").unwrap_err().contains("flaky"));
        assert!(parse("desird = 3").unwrap_err().contains("desird"));
        assert!(parse("[expect]\nend = \"finished\"").unwrap_err().contains("finished"));
        assert!(parse("ready-after-seconds = 5").unwrap_err().contains("slow-ready"));
        assert!(parse("desired = 0").unwrap_err().contains("at least 1"));
    }

    #[test]
    fn the_builtin_set_covers_each_situation_once() {
        let names: Vec<_> = builtin().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["healthy", "slow-ready", "never-ready", "crash-loop", "promotion", "abort", "host-restart"]);
    }
}
