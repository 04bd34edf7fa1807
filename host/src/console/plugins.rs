//! What plugins this host loaded: kind, version, contract, sha256 and limits; and the
//! optional ones that failed to load, with why.

use axum::extract::State;
use axum::http::StatusCode;
use maud::html;

use super::layout::{self, Nav};
use super::{Answer, Session};
use crate::http::AppState;

pub async fn list(State(state): State<AppState>, session: Session) -> Answer {
    let loaded = state.plugins.views();
    let skipped = state.plugins.skipped();
    let body = html! {
        h1 { "Plugins" }
        div.scroll { table #plugins {
            caption.visually-hidden { "Plugins loaded" }
            thead { tr {
                th scope="col" { "Plugin" } th scope="col" { "Kind" } th scope="col" { "Version" } th scope="col" { "Contract" }
                th scope="col" { "sha256" } th scope="col" { "Limits" } th scope="col" { "Source" }
            } }
            tbody { @for p in &loaded {
                tr data-plugin=(p.name) {
                    th scope="row" { (p.name) }
                    td data-col="kind" { (crate::plugins::kind_name(p.kind)) }
                    td data-col="version" { (p.version) }
                    td data-col="contract" { (serde_json::to_value(p.contract).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                    td data-col="sha256" { (layout::short_digest(&p.sha256)) }
                    td data-col="limits" { (p.memory_mb) " MiB, " (p.deadline_ms) " ms a call" }
                    td data-col="source" { code { (p.source) } " (" (p.loaded_from) ", " (format!("{:.0}", p.load_ms)) " ms)" }
                }
            } }
        } }
        @if !skipped.is_empty() {
            h2 { "Not loaded" }
            div.scroll { table #skipped-plugins {
                thead { tr { th scope="col" { "Plugin" } th scope="col" { "Why" } } }
                tbody { @for (name, reason) in skipped { tr data-plugin=(name) { th scope="row" { (name) } td { (reason) } } } }
            } }
        }
    };
    Ok(layout::respond(StatusCode::OK, layout::page("Plugins", Some(&session), Nav::Plugins, body)))
}
