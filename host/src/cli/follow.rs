//! Following a deploy: its server-sent events shown as they come. On a terminal, a
//! spinner with the current step and a byte bar while pushing; elsewhere one plain line
//! per event, for logs and scripts. Ctrl-C stops following, never the deploy.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::client::{segment, CliError, Client};
use super::show::{bytes, short_digest, text};

/// One server-sent event: its name and JSON data.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub data: Value,
}

impl Event {
    /// An SSE event with JSON data; keep-alives and other data are not events here.
    fn parsed(event: &eventsource_stream::Event) -> Option<Event> {
        let data = serde_json::from_str(&event.data).ok()?;
        let name = if event.event.is_empty() { "message".to_owned() } else { event.event.clone() };
        Some(Event { name, data })
    }
}

/// How long following keeps trying to reach the server again (a host restarting,
/// another host behind the same address taking over) before it gives up.
const RECONNECT_FOR: Duration = Duration::from_secs(120);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// A terminal: spinner and bars on stderr, lasting lines above them.
    Bars,
    /// Not a terminal: one line per event on stdout.
    Lines,
    /// Nothing (the caller prints JSON).
    Silent,
}

/// What a person needs from the stream: a line per change, the current step as the
/// spinner's message, bytes as a bar.
pub struct Watch {
    id: String,
    started: Instant,
    terminal: bool,
    /// Shows nothing (JSON output: only the final record is printed).
    silent: bool,
    status: String,
    step: Option<(u64, String, String)>,
    told_promotion_for: Option<u64>,
    bars: MultiProgress,
    spinner: ProgressBar,
    push: Option<ProgressBar>,
    replicas: String,
}

impl Watch {
    pub fn new(id: &str, view: View) -> Watch {
        let (terminal, silent) = (view == View::Bars, view == View::Silent);
        let bars = MultiProgress::with_draw_target(if terminal { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
        let spinner = bars.add(ProgressBar::new_spinner());
        spinner.set_style(ProgressStyle::with_template("{spinner:.cyan} {elapsed:>4} {msg}").expect("a valid template"));
        if terminal {
            spinner.enable_steady_tick(Duration::from_millis(120));
        }
        Watch {
            id: id.to_owned(),
            started: Instant::now(),
            terminal,
            silent,
            status: String::new(),
            step: None,
            told_promotion_for: None,
            bars,
            spinner,
            push: None,
            replicas: String::new(),
        }
    }

    /// A line that stays: above the bars on a terminal, on stdout otherwise.
    fn say(&self, line: String) {
        if self.silent {
            return;
        }
        if self.terminal {
            self.bars.suspend(|| eprintln!("{line}"));
        } else {
            println!("[{:7.2}s] {line}", self.started.elapsed().as_secs_f64());
        }
    }

    /// Shows one event; returns the final record once the deploy ended.
    pub fn show(&mut self, event: &Event) -> Option<Value> {
        let data = &event.data;
        match event.name.as_str() {
            "record" => {
                let status = text(&data["status"]);
                if status != self.status {
                    if status == "rolling-out" {
                        if let Some(bar) = self.push.take() {
                            bar.finish_and_clear();
                        }
                    }
                    let extra = match status.as_str() {
                        "queued" => format!(" (revision {}, {} strategy)", text(&data["revision"]), text(&data["strategy"])),
                        "rolling-out" => format!(" ({})", short_digest(&data["image"])),
                        _ => String::new(),
                    };
                    self.say(format!("{status}{extra}"));
                    self.status = status.clone();
                }
                if let Some(step) = data["step"].as_object() {
                    let index = step.get("index").and_then(Value::as_u64).unwrap_or(0);
                    let action = step.get("action").map(text).unwrap_or_default();
                    let words = step.get("description").map(text).unwrap_or_default();
                    let now = (index, action.clone(), words.clone());
                    if self.step.as_ref() != Some(&now) {
                        if self.step.as_ref().map(|s| (s.0, &s.1)) != Some((index, &action)) {
                            self.say(format!("  step {index} {action}: {words}"));
                        }
                        self.step = Some(now);
                    }
                    if action == "await-promotion" && self.told_promotion_for != Some(index) {
                        self.told_promotion_for = Some(index);
                        self.say(format!("  waiting for promotion: run `warship promote {}` (or `warship abort {}`)", self.id, self.id));
                    }
                }
                self.spinner.set_message(self.message());
                if matches!(self.status.as_str(), "succeeded" | "failed" | "aborted") {
                    return Some(data.clone());
                }
            }
            "build" => match data["type"].as_str() {
                Some("bytes") => {
                    let (done, total) = (data["done"].as_u64().unwrap_or(0), data["total"].as_u64().unwrap_or(0));
                    if self.terminal {
                        let bar = self.push.get_or_insert_with(|| {
                            let bar = self.bars.add(ProgressBar::new(total));
                            bar.set_style(
                                ProgressStyle::with_template("  {prefix} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                                    .expect("a valid template")
                                    .progress_chars("=> "),
                            );
                            bar
                        });
                        bar.set_prefix(text(&data["what"]));
                        bar.set_length(total);
                        bar.set_position(done);
                    } else if done == total {
                        self.say(format!("  pushed {} ({})", text(&data["what"]), bytes(total)));
                    }
                }
                Some("step") => self.say(format!("  {}: {}", text(&data["step"]), text(&data["detail"]))),
                Some("retry") => self.say(format!("  retrying {} (attempt {}): {}", text(&data["what"]), text(&data["attempt"]), text(&data["error"]))),
                _ => {}
            },
            "replicas" => {
                let side = |w: &Value| format!("r{} {}/{} ready", text(&w["revision"]), text(&w["ready"]), text(&w["replicas"]));
                let mut now = format!("candidate {}", side(&data["candidate"]));
                if !data["stable"].is_null() {
                    now = format!("stable {}, {now}", side(&data["stable"]));
                }
                if now != self.replicas {
                    if !self.terminal {
                        self.say(format!("  replicas: {now}"));
                    }
                    self.replicas = now;
                    self.spinner.set_message(self.message());
                }
            }
            _ => {}
        }
        None
    }

    fn message(&self) -> String {
        let step = self.step.as_ref().map(|(i, _, words)| format!(" · step {i}: {words}")).unwrap_or_default();
        let replicas = if self.replicas.is_empty() { String::new() } else { format!(" · {}", self.replicas) };
        format!("{}{step}{replicas}", self.status)
    }

    /// The stream broke; following goes on once the server answers again.
    pub fn note_reconnecting(&self, why: &str) {
        self.say(format!("  (connection to the server lost: {why}; reconnecting)"));
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.push {
            bar.finish_and_clear();
        }
        self.spinner.finish_and_clear();
    }
}

/// Follows deploy `id` to its end; the final record. Ctrl-C stops following only.
/// When the stream breaks (its host restarts, the connection drops), it reconnects
/// with the last event id it saw and goes on where it was; the result comes only from
/// the deploy's final record, never from a broken connection.
pub async fn follow(client: &Client, id: &str, view: View) -> Result<Value, CliError> {
    let path = format!("/api/v1/deploys/{}/events", segment(id));
    let mut watch = Watch::new(id, view);
    let mut last_id: Option<String> = None;
    let mut unreachable_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(250);
    let ended = loop {
        let mut request = client.request(reqwest::Method::GET, &path);
        if let Some(last) = &last_id {
            request = request.header("Last-Event-ID", last);
        }
        let connected = tokio::select! {
            connected = client.send(request) => connected,
            _ = tokio::signal::ctrl_c() => break Err(interrupted(id)),
        };
        let response = match connected {
            Ok(response) => response,
            // A host gone, or a proxy in front of the hosts answering 502/503/504 while the
            // one it chose goes away: transient, for a while.
            Err(error @ (CliError::Unreachable { .. } | CliError::Problem { status: 502..=504, .. })) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > RECONNECT_FOR {
                    break Err(match error {
                        CliError::Unreachable { url, message } => CliError::Unreachable {
                            url,
                            message: format!("{message} (for {}s while following deploy {id})", RECONNECT_FOR.as_secs()),
                        },
                        other => other,
                    });
                }
                watch.note_reconnecting(&match &error {
                    CliError::Unreachable { message, .. } => message.clone(),
                    other => other.to_string(),
                });
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = tokio::signal::ctrl_c() => break Err(interrupted(id)),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(other) => break Err(other),
        };
        unreachable_since = None;
        backoff = Duration::from_millis(250);
        let mut events = response.bytes_stream().eventsource();
        let finished = loop {
            let next = tokio::select! {
                next = events.next() => next,
                _ = tokio::signal::ctrl_c() => break Some(Err(interrupted(id))),
            };
            match next {
                Some(Ok(event)) => {
                    if !event.id.is_empty() {
                        last_id = Some(event.id.clone());
                    }
                    if let Some(record) = Event::parsed(&event).and_then(|e| watch.show(&e)) {
                        break Some(Ok(record));
                    }
                }
                // The stream broke or ended without the final record: reconnect.
                Some(Err(_)) | None => break None,
            }
        };
        match finished {
            Some(result) => break result,
            None => {
                // An ended deploy whose events are gone still has its record.
                if let Ok(record) = client.get(&format!("/api/v1/deploys/{}", segment(id))).await {
                    if record["finished_at"].is_string() {
                        break Ok(record);
                    }
                }
                watch.note_reconnecting("the event stream ended before the deploy did");
            }
        }
    };
    watch.finish();
    ended
}

fn interrupted(id: &str) -> CliError {
    CliError::Interrupted(format!("stopped following; deploy {id} goes on. Watch it again with: warship follow {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn events_are_parsed_across_chunks_with_their_ids_and_keep_alives_are_skipped() {
        // A multi-byte character split between chunks, multi-line data, a keep-alive.
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
            Ok(bytes::Bytes::from_static(b"id: 7\nevent: record\ndata: {\"status\":")),
            Ok(bytes::Bytes::from(&"\"queued\", \"by\": \"J\u{f6}rg\"}\n\n:\n\n".as_bytes()[..19])),
            Ok(bytes::Bytes::from(&"\"queued\", \"by\": \"J\u{f6}rg\"}\n\n:\n\n".as_bytes()[19..])),
            Ok(bytes::Bytes::from_static(b"id: 8\nevent: build\ndata: {\"type\":\ndata: \"bytes\"}\n\n")),
        ];
        let parsed: Vec<_> = futures_util::stream::iter(chunks).eventsource().map(|e| e.unwrap()).collect().await;
        let events: Vec<(String, Option<Event>)> = parsed.iter().map(|e| (e.id.clone(), Event::parsed(e))).collect();
        assert_eq!(
            events,
            [
                ("7".to_owned(), Some(Event { name: "record".into(), data: json!({"status": "queued", "by": "J\u{f6}rg"}) })),
                ("8".to_owned(), Some(Event { name: "build".into(), data: json!({"type": "bytes"}) })),
            ]
        );
    }

    #[test]
    fn a_canary_waiting_for_promotion_says_the_command_and_the_end_is_returned() {
        let mut watch = Watch::new("d1", View::Silent);
        let record = |status: &str, step: Value| Event { name: "record".into(), data: json!({"status": status, "step": step}) };
        assert_eq!(watch.show(&record("rolling-out", json!({"index": 1, "action": "await-promotion", "description": "canary at 10%: waiting"}))), None);
        assert_eq!(watch.told_promotion_for, Some(1));
        let end = watch.show(&record("succeeded", Value::Null));
        assert_eq!(end.unwrap()["status"], "succeeded");
    }
}
