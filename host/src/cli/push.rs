//! WARs from the local disk to the server: `war push`, and `deploy ENV ./app.war`,
//! which uploads only when the server does not already hold the same bytes.

use std::io::{IsTerminal, Read};
use std::path::Path;

use futures_util::StreamExt;
use serde_json::Value;

use super::client::{segment, CliError, Client};

/// What `deploy` was given as its WAR: a file on this machine (uploaded first unless
/// already stored), or the name of one on the server.
pub fn is_local(war: &str) -> bool {
    Path::new(war).is_file()
}

/// The server's `app/file.war` for a local WAR: one already stored with the same
/// sha256 (the one of the same name first), or the file uploaded now.
pub async fn ensure_uploaded(
    client: &Client,
    file: &Path,
    app: Option<String>,
    json_out: bool,
) -> Result<String, CliError> {
    let (default_app, name) = names(file, app)?;
    let sha256 = file_sha256(file).await?;
    let stored = client.get_all("/api/v1/wars").await?;
    let same_bytes = |w: &&Value| w["sha256"].as_str() == Some(&sha256);
    let same_name = |w: &&&Value| w["app"].as_str() == Some(&default_app) && w["file"].as_str() == Some(&name);
    let candidates: Vec<&Value> = stored.as_array().into_iter().flatten().filter(same_bytes).collect();
    if let Some(war) = candidates.iter().find(same_name).or(candidates.first()) {
        let stored_as =
            format!("{}/{}", war["app"].as_str().unwrap_or_default(), war["file"].as_str().unwrap_or_default());
        if !json_out {
            eprintln!(
                "{} is already stored as {stored_as} (sha256 {}…); not uploading it again",
                file.display(),
                &sha256[..12]
            );
        }
        return Ok(stored_as);
    }
    let record = push_war(client, file, Some(default_app), json_out).await?;
    if !json_out {
        eprintln!(
            "uploaded {}/{} (sha256 {}…)",
            record["app"].as_str().unwrap_or_default(),
            record["file"].as_str().unwrap_or_default(),
            &sha256[..12]
        );
    }
    Ok(format!("{}/{}", record["app"].as_str().unwrap_or_default(), record["file"].as_str().unwrap_or_default()))
}

/// The app (given, or the file's name without `.war`) and the file's name.
fn names(file: &Path, app: Option<String>) -> Result<(String, String), CliError> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CliError::Usage(format!("{} has no file name", file.display())))?
        .to_owned();
    let app = app.unwrap_or_else(|| name.strip_suffix(".war").unwrap_or(&name).to_owned());
    Ok((app, name))
}

/// The file's sha256 in hex, read in pieces off the async runtime.
async fn file_sha256(file: &Path) -> Result<String, CliError> {
    let path = file.to_owned();
    let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut reader = std::fs::File::open(&path)?;
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = reader.read(&mut buffer)?;
            if read == 0 {
                return Ok(hex::encode(hasher.finish()));
            }
            hasher.update(&buffer[..read]);
        }
    })
    .await
    .expect("hashing does not panic");
    hashed.map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))
}

/// Streams the file to the server (never whole in memory), with a byte bar on a terminal.
pub async fn push_war(client: &Client, file: &Path, app: Option<String>, json_out: bool) -> Result<Value, CliError> {
    let unreadable = |e: std::io::Error| CliError::Usage(format!("cannot read {}: {e}", file.display()));
    let (app, name) = names(file, app)?;
    let opened = tokio::fs::File::open(file).await.map_err(unreadable)?;
    let size = opened.metadata().await.map_err(unreadable)?.len();
    let bar = if !json_out && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "uploading {prefix} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(name.clone());
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let counted = bar.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(opened, 256 * 1024).inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            counted.inc(chunk.len() as u64);
        }
    });
    let request = client
        .request(reqwest::Method::PUT, &format!("/api/v1/wars/{}/{}", segment(&app), segment(&name)))
        .header(reqwest::header::CONTENT_LENGTH, size)
        .header(reqwest::header::CONTENT_TYPE, "application/java-archive")
        .body(reqwest::Body::wrap_stream(stream));
    let response = client.send(request).await;
    bar.finish_and_clear();
    let response = response?;
    response
        .json()
        .await
        .map_err(|e| CliError::Unreachable { url: client.url.clone(), message: format!("the answer is not JSON: {e}") })
}
