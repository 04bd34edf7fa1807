//! An env's pod logs: a pod picker and the last lines; following them streams new lines
//! into the page over SSE, or, without script, as plain text at `…/logs/raw`.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use maud::html;
use serde::Deserialize;

use super::layout::{self, Nav};
use super::{env_name, Answer, ConsoleError, Session};
use crate::http::{ApiError, AppState};

const TAIL_DEFAULT: i64 = 200;
const TAIL_MAX: i64 = 5000;
/// The most of a log a page shows at once, and how long it waits for it.
const PAGE_BYTES: usize = 512 << 10;
const PAGE_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Deserialize)]
pub struct LogsQuery {
    pod: Option<String>,
    tail: Option<String>,
    follow: Option<String>,
}

impl LogsQuery {
    fn pod(&self) -> Option<&str> {
        self.pod.as_deref().map(str::trim).filter(|p| !p.is_empty())
    }

    fn tail(&self) -> i64 {
        self.tail.as_deref().and_then(|t| t.trim().parse::<i64>().ok()).unwrap_or(TAIL_DEFAULT).clamp(0, TAIL_MAX)
    }

    fn follow(&self) -> bool {
        self.follow.as_deref().is_some_and(|f| matches!(f, "on" | "true" | "1"))
    }

    fn query(&self, tail: i64, follow: bool) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(pod) = self.pod() {
            query.append_pair("pod", pod);
        }
        query.append_pair("tail", &tail.to_string());
        if follow {
            query.append_pair("follow", "true");
        }
        query.finish()
    }
}

pub async fn page(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Answer {
    let name = env_name(&name)?;
    let status = state.env_ops.status(&session.user, &name).await?;
    let pods: Vec<String> = status
        .service
        .iter()
        .flat_map(|s| s.workloads.iter())
        .flat_map(|w| w.pods.iter())
        .map(|p| p.name.clone())
        .collect();
    let read = async {
        let (pod, stream) = state.env_ops.logs(&session.user, &name, query.pod(), false, Some(query.tail())).await?;
        let mut text = Vec::new();
        let mut stream = std::pin::pin!(stream);
        let collect = async {
            while let Some(Ok(chunk)) = stream.next().await {
                text.extend_from_slice(&chunk);
                if text.len() >= PAGE_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(PAGE_WAIT, collect).await;
        Ok::<_, ApiError>((pod, String::from_utf8_lossy(&text).into_owned()))
    };
    let (pod, text, problem) = match read.await {
        Ok((pod, text)) => (Some(pod), text, None),
        Err(problem) if problem.code == "env.not_found" => return Err(ConsoleError::of(problem)),
        Err(problem) => (None, String::new(), Some(problem)),
    };
    let follow = query.follow() && problem.is_none();
    let base = format!("/ui/envs/{name}/logs");
    let chosen = pod.clone().or_else(|| query.pod().map(str::to_owned));
    let body = html! {
        h1 { "Logs of env " a href=(format!("/ui/envs/{name}")) { (name) } }
        form #logs-form method="get" action=(base) {
            div.field {
                label for="logs-pod" { "Pod" }
                select #logs-pod name="pod" {
                    option value="" selected[chosen.is_none()] { "A pod of the serving release" }
                    @for p in &pods { option value=(p) selected[chosen.as_deref() == Some(p.as_str())] { (p) } }
                }
            }
            div.field {
                label for="logs-tail" { "Last lines" }
                input #logs-tail name="tail" type="number" min="0" max=(TAIL_MAX) value=(query.tail());
            }
            div.field.check {
                input #logs-follow name="follow" type="checkbox" value="on" checked[query.follow()];
                label for="logs-follow" { "Follow new lines" }
            }
            button type="submit" { "Show" }
        }
        @if let Some(problem) = &problem { p.notice #logs-problem role="status" data-code=(problem.code) { (problem.detail) } }
        @if let Some(pod) = &pod { p { "Pod " code #logs-shown-pod { (pod) } } }
        pre #log tabindex="0" aria-label="Log" data-live=[follow.then(|| format!("{base}/events?{}", query.query(0, true)))] { (text) }
        p { a #logs-raw href=(format!("{base}/raw?{}", query.query(query.tail(), true))) { "Follow as plain text" } " (works without script)" }
    };
    Ok(layout::respond(StatusCode::OK, layout::page(&format!("Logs of {name}"), Some(&session), Nav::Envs, body)))
}

/// Complete lines of a byte stream, as text: a line cut between two chunks (or a
/// character cut in its bytes) waits for the rest.
fn lines(
    stream: impl Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
) -> impl Stream<Item = String> + Send + 'static {
    futures_util::stream::unfold(
        (Box::pin(stream), Vec::<u8>::new(), false),
        |(mut stream, mut pending, done)| async move {
            if done {
                return None;
            }
            loop {
                match stream.next().await {
                    Some(Ok(chunk)) => {
                        pending.extend_from_slice(&chunk);
                        if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                            let rest = pending.split_off(end + 1);
                            let text = String::from_utf8_lossy(&pending).replace('\r', "");
                            return Some((text, (stream, rest, false)));
                        }
                    }
                    _ => {
                        let text = String::from_utf8_lossy(&pending).replace('\r', "");
                        return Some((text, (stream, Vec::new(), true)));
                    }
                }
            }
        },
    )
    .filter(|text| futures_util::future::ready(!text.is_empty()))
}

/// New lines as `line` events, then `end` when the pod's log ends.
pub async fn events(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ConsoleError> {
    let name = env_name(&name)?;
    let (_, stream) = state.env_ops.logs(&session.user, &name, query.pod(), true, Some(query.tail())).await?;
    let events = lines(stream)
        .map(|text| Ok(Event::default().event("line").data(text)))
        .chain(futures_util::stream::once(async { Ok(Event::default().event("end").data("over")) }));
    Ok(Sse::new(super::session::while_signed_in(state, session, events)).keep_alive(KeepAlive::default()))
}

/// The log as plain text, followed: a browser shows lines as they come.
pub async fn raw(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Result<Response, ConsoleError> {
    let name = env_name(&name)?;
    let (pod, stream) =
        state.env_ops.logs(&session.user, &name, query.pod(), query.follow(), Some(query.tail())).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::HeaderName::from_static("x-warship-pod"), pod),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_cut_between_chunks_arrive_whole() {
        let chunks = ["first li", "ne\r\nsecond\nthi", "rd \u{e9}"];
        let mut bytes: Vec<std::io::Result<bytes::Bytes>> =
            chunks.iter().map(|c| Ok(bytes::Bytes::from(c.as_bytes().to_vec()))).collect();
        // A character split across chunks.
        let last = "\u{e9}!\n".as_bytes().to_vec();
        bytes.push(Ok(bytes::Bytes::from(last[..1].to_vec())));
        bytes.push(Ok(bytes::Bytes::from(last[1..].to_vec())));
        let got: Vec<String> = lines(futures_util::stream::iter(bytes)).collect().await;
        assert_eq!(got, ["first line\nsecond\n", "third \u{e9}\u{e9}!\n"]);
    }

    #[test]
    fn tail_is_bounded_and_follow_reads_like_a_checkbox() {
        let q = LogsQuery { pod: Some(" ".into()), tail: Some("99999".into()), follow: Some("on".into()) };
        assert_eq!((q.pod(), q.tail(), q.follow()), (None, TAIL_MAX, true));
        assert_eq!(LogsQuery::default().tail(), TAIL_DEFAULT);
        assert_eq!(q.query(0, true), "tail=0&follow=true");
    }
}
