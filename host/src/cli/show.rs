//! How the CLI prints what the API answers for people: tables, the status tree, a
//! WAR's facts. Colour only on a terminal (console decides, and honours NO_COLOR).

use console::style;
use serde_json::Value;

/// The text of a JSON field, `-` when absent.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `sha256:0123456789ab` from a digest or an image pinned by digest.
pub fn short_digest(value: &Value) -> String {
    let full = text(value);
    let digest = full.rsplit_once('@').map_or(full.as_str(), |(_, d)| d);
    match digest.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", &hex[..hex.len().min(12)]),
        None => digest.to_owned(),
    }
}

/// Columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![style(line(headers.iter().map(|h| h.to_string()).collect())).bold().to_string()];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

pub fn envs(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![text(&e["name"]), text(&e["tomcat"]), text(&e["jdk"]), text(&e["replicas"]), text(&e["current"]["version"]), text(&e["used"])]
        })
        .collect();
    table(&["NAME", "TOMCAT", "JDK", "REPLICAS", "VERSION", "RELEASES"], &rows)
}

pub fn wars(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| vec![format!("{}/{}", text(&w["app"]), text(&w["file"])), bytes(w["size"].as_u64().unwrap_or(0)), text(&w["servlet_api"]), short_sha(&w["sha256"])])
        .collect();
    table(&["WAR", "SIZE", "SERVLET API", "SHA256"], &rows)
}

pub fn war(w: &Value) -> String {
    let mut lines = vec![
        format!("{}/{}", text(&w["app"]), text(&w["file"])),
        format!("  size         {}", bytes(w["size"].as_u64().unwrap_or(0))),
        format!("  sha256       {}", text(&w["sha256"])),
        format!("  servlet API  {} (from {})", text(&w["servlet_api"]), text(&w["servlet_api_source"])),
    ];
    if let Some(evidence) = w["servlet_api_evidence"].as_str().filter(|e| !e.is_empty()) {
        lines.push(format!("  decided by   {evidence}"));
    }
    lines.push(format!("  web.xml      {}", if w["has_web_xml"] == true { "yes" } else { "no" }));
    lines.push(format!("  entries      {}", text(&w["entries"])));
    lines.join("\n")
}

pub fn deploys(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let result = match d["error"]["code"].as_str() {
                Some(code) => format!("{} ({code})", text(&d["status"])),
                None => text(&d["status"]),
            };
            vec![text(&d["id"]), text(&d["revision"]), text(&d["version"]), text(&d["strategy"]), status_colour(&result), short_digest(&d["digest"]), moment(&d["created_at"])]
        })
        .collect();
    table(&["ID", "REV", "VERSION", "STRATEGY", "RESULT", "DIGEST", "STARTED"], &rows)
}

pub fn catalog(list: &Value) -> String {
    let rows: Vec<Vec<String>> =
        list.as_array().into_iter().flatten().map(|c| vec![text(&c["tomcat"]), text(&c["jdk"]), text(&c["base_image"])]).collect();
    table(&["TOMCAT", "JDK", "BASE IMAGE"], &rows)
}

pub fn plugins(list: &Value) -> String {
    let rows: Vec<Vec<String>> = match list {
        Value::Array(items) => items.iter().map(|p| vec![text(&p["name"]), text(&p["kind"]), text(&p["version"])]).collect(),
        // {kind: [names]}
        Value::Object(kinds) => kinds
            .iter()
            .flat_map(|(kind, names)| names.as_array().into_iter().flatten().map(move |n| vec![text(n), kind.clone(), "-".into()]))
            .collect(),
        _ => Vec::new(),
    };
    table(&["NAME", "KIND", "VERSION"], &rows)
}

fn status_colour(status: &str) -> String {
    let styled = style(status);
    match status.split(' ').next().unwrap_or_default() {
        "succeeded" => styled.green(),
        "failed" | "aborted" => styled.red(),
        _ => styled.yellow(),
    }
    .to_string()
}

/// env ▸ service ▸ workloads ▸ pods.
pub fn status(s: &Value) -> String {
    let mut out = Vec::new();
    let current = &s["current"];
    let serving = if current.is_null() {
        "no release yet".to_owned()
    } else {
        format!("release {} ({}, {})", text(&current["revision"]), text(&current["version"]), short_digest(&current["digest"]))
    };
    out.push(format!(
        "{} {}  tomcat {} · jdk {} · {} replicas · {serving}",
        style("env").dim(),
        style(text(&s["name"])).bold(),
        text(&s["tomcat"]),
        text(&s["jdk"]),
        text(&s["replicas"])
    ));
    if let Some(url) = s["url"].as_str() {
        out.push(format!("  {} {}  (or {})", style("url").dim(), style(url).cyan(), text(&s["path_url"])));
    }
    if let Some(health) = s["health_path"].as_str() {
        out.push(format!("  {} GET {}{} answers", style("ready when").dim(), text(&s["context_path"]).trim_end_matches('/'), health));
    }
    if let Some(id) = s["deploying"].as_str() {
        out.push(format!("  {} deploy {id} in progress (warship follow {id})", style("⟳").yellow()));
    }
    let service = &s["service"];
    if service.is_null() {
        out.push("  (no cluster configured: nothing runs)".into());
        return out.join("\n");
    }
    let selector = service["selector"].as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect::<Vec<_>>().join(",")).unwrap_or_default();
    out.push(format!("└─ {} {}/{}  selector {selector}", style("service").dim(), text(&service["namespace"]), text(&service["name"])));
    let workloads = service["workloads"].as_array().cloned().unwrap_or_default();
    if workloads.is_empty() {
        out.push("   (no workloads)".into());
    }
    for (i, w) in workloads.iter().enumerate() {
        let last = i + 1 == workloads.len();
        let (branch, indent) = if last { ("└─", "   ") } else { ("├─", "│  ") };
        let (ready, desired) = (w["ready"].as_u64().unwrap_or(0), w["desired"].as_u64().unwrap_or(0));
        let counts = format!("{ready}/{desired} ready");
        let counts = if ready == desired { style(counts).green() } else { style(counts).yellow() };
        let serving = if w["serving"] == true { style(" serving").cyan().to_string() } else { String::new() };
        out.push(format!(
            "   {branch} {} {}  release {} · {} · {} · {counts}{serving}",
            style("workload").dim(),
            text(&w["name"]),
            text(&w["release"]),
            text(&w["version"]),
            short_digest(&w["digest"])
        ));
        let pods = w["pods"].as_array().cloned().unwrap_or_default();
        for (j, p) in pods.iter().enumerate() {
            let pod_branch = if j + 1 == pods.len() { "└─" } else { "├─" };
            let ready = if p["ready"] == true { style("ready").green() } else { style("not ready").red() };
            let mut line = format!(
                "   {indent}   {pod_branch} {} {}  {} · {ready} · restarts {} · node {}",
                style("pod").dim(),
                text(&p["name"]),
                text(&p["phase"]),
                text(&p["restarts"]),
                text(&p["node"])
            );
            if let Some(waiting) = p["waiting"].as_str() {
                line.push_str(&format!(" · waiting {waiting}"));
            }
            if p["terminating"] == true {
                line.push_str(" · terminating");
            }
            out.push(line);
        }
    }
    out.join("\n")
}

/// `2026-11-27 05:44:52` from an RFC 3339 time: to the second, UTC.
fn moment(value: &Value) -> String {
    let full = text(value);
    full.get(..19).map_or(full.clone(), |t| t.replace('T', " "))
}

fn short_sha(value: &Value) -> String {
    text(value).chars().take(12).collect()
}

pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_status_tree_shows_release_digest_counts_and_pods() {
        console::set_colors_enabled(false);
        let status = json!({
            "name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 2, "deploying": null,
            "url": "http://shop.alice.localhost:8000/", "path_url": "http://localhost:8000/alice/shop/",
            "current": {"revision": 2, "version": "2.0", "digest": "sha256:0123456789abcdef0123"},
            "service": {"name": "shop", "namespace": "warship-alice", "selector": {"env": "shop", "warship.io/release": "2"},
                "workloads": [{"name": "shop-r2", "release": 2, "version": "2.0", "digest": "sha256:0123456789abcdef0123",
                    "desired": 2, "ready": 1, "serving": true,
                    "pods": [{"name": "shop-r2-a", "phase": "Running", "ready": true, "restarts": 0, "node": "fake-1"},
                             {"name": "shop-r2-b", "phase": "Pending", "ready": false, "restarts": 3, "node": null, "waiting": "CrashLoopBackOff"}]}]}
        });
        assert_eq!(
            super::status(&status),
            "env shop  tomcat 10.1 · jdk 17 · 2 replicas · release 2 (2.0, sha256:0123456789ab)\n  \
             url http://shop.alice.localhost:8000/  (or http://localhost:8000/alice/shop/)\n\
             └─ service warship-alice/shop  selector env=shop,warship.io/release=2\n   \
             └─ workload shop-r2  release 2 · 2.0 · sha256:0123456789ab · 1/2 ready serving\n         \
             ├─ pod shop-r2-a  Running · ready · restarts 0 · node fake-1\n         \
             └─ pod shop-r2-b  Pending · not ready · restarts 3 · node - · waiting CrashLoopBackOff"
        );
    }

    #[test]
    fn an_env_with_a_health_path_says_where_it_is_probed() {
        console::set_colors_enabled(false);
        let status = json!({"name": "api", "tomcat": "9.0", "jdk": "17", "replicas": 1, "current": null,
            "context_path": "/shop", "health_path": "/helloworld", "deploying": null, "service": null});
        let shown = super::status(&status);
        assert!(shown.contains("\n  ready when GET /shop/helloworld answers\n"), "{shown}");
    }

    #[test]
    fn tables_pad_to_the_widest_cell() {
        console::set_colors_enabled(false);
        assert_eq!(table(&["A", "BB"], &[vec!["long".into(), "x".into()]]), "A     BB\nlong  x");
    }
}
