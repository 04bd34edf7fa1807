//! A real browser for the console's tests: Debian's `chromedriver` on a free loopback port,
//! driving a headless Chromium through WebDriver (fantoccini). Helpers go to a console URL,
//! fill a field, click, wait for text or an element (failing with what the page says), and
//! save screenshots of a page at a desktop and a phone width under
//! `target/screenshots/<test>/<page>-<width>.png` (under `target/`: never committed).
//!
//! Lifecycle: [`Browser::start`] starts chromedriver in a process group of its own and
//! waits until it answers `/status`, then opens a session; [`Browser::close`] ends the
//! session (Chromium exits); dropping the browser, closed or not (a failed test), sends
//! SIGTERM to chromedriver's group by its pid, waits for the group to be empty, then
//! SIGKILLs what is left. chromedriver's and Chromium's temporary files live in a temp dir
//! the browser removes.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::free_port;
use axum::http;

/// The widths every page is photographed at: a laptop and a phone (iPhone 12 to 15).
pub const WIDTHS: [(u32, u32); 2] = [(1280, 900), (390, 844)];

/// How long waits last unless a test says otherwise.
pub const WAIT: Duration = Duration::from_secs(10);

/// Screenshots taller than this are cut (a page of 100 envs would otherwise be huge).
const MAX_SHOT_HEIGHT: u32 = 4000;

pub struct Browser {
    client: Client,
    driver: Child,
    /// Where the console answers: `http://127.0.0.1:PORT`.
    pub base: String,
    shots: PathBuf,
    size: (u32, u32),
    /// Pages that [`Browser::shoot`] found wider than a viewport (a phone zooms them out).
    too_wide: std::sync::Mutex<Vec<String>>,
    _tmp: tempfile::TempDir,
}

/// A Chrome DevTools command through chromedriver's `goog/cdp/execute` endpoint: device
/// metrics for an exact viewport (headless windows are at least 500 px wide).
#[derive(Debug)]
struct Cdp(&'static str, Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"cmd": self.0, "params": self.1}).to_string()))
    }
}

/// The browser's console messages (`goog:loggingPrefs`), read and cleared.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// An XPath string literal for `text` (XPath 1.0 has no escapes: concat() around quotes).
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        return format!("'{text}'");
    }
    let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
    format!("concat({})", parts.join(", \"'\", "))
}

impl Browser {
    /// A browser for `test` (its screenshots' folder) on the console at `base`, with a
    /// desktop viewport (1280 × 900).
    pub async fn start(test: &str, base: &str) -> Browser {
        Self::start_sized(test, base, WIDTHS[0]).await
    }

    /// As [`Browser::start`], with a viewport of `(width, height)` CSS pixels.
    pub async fn start_sized(test: &str, base: &str, size: (u32, u32)) -> Browser {
        let tmp = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(tmp.path().join("chromedriver.log")).unwrap();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            // Its scoped dirs and Chromium's profile under our temp dir, removed with it.
            .env("TMPDIR", tmp.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect(
                "chromedriver is not installed: run scripts/test, which installs Debian's chromium and chromium-driver",
            );
        let webdriver = format!("http://127.0.0.1:{port}");
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots").join(test);
        std::fs::create_dir_all(&shots).unwrap();
        // From here on, a panic drops a Browser that stops chromedriver; until the
        // session exists, stop it by hand.
        let mut guard = DriverGuard(Some(driver));
        let started = Instant::now();
        while !reqwest::get(format!("{webdriver}/status")).await.is_ok_and(|r| r.status().is_success()) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer /status within 20 s: {}",
                std::fs::read_to_string(tmp.path().join("chromedriver.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-extensions", "--no-first-run", "--no-default-browser-check",
                    "--disable-background-networking", "--disable-crash-reporter", "--disable-breakpad",
                    format!("--window-size={},{}", size.0.max(500), size.1),
                    format!("--user-data-dir={}", tmp.path().join("profile").display()),
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match ClientBuilder::new(connector).capabilities(capabilities).connect(&webdriver).await {
            Ok(client) => client,
            Err(e) => panic!(
                "no Chromium session through chromedriver: {e}\n{}",
                std::fs::read_to_string(tmp.path().join("chromedriver.log")).unwrap_or_default()
            ),
        };
        let browser = Browser {
            client,
            driver: guard.0.take().unwrap(),
            base: base.trim_end_matches('/').to_owned(),
            shots,
            size,
            too_wide: Default::default(),
            _tmp: tmp,
        };
        browser.viewport(size).await;
        browser
    }

    /// The fantoccini client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sets the viewport to exactly `(width, height)` CSS pixels, as a phone (with its
    /// `meta viewport` honoured) below 600 px.
    pub async fn viewport(&self, (width, height): (u32, u32)) {
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600});
        self.client.issue_cmd(Cdp("Emulation.setDeviceMetricsOverride", metrics)).await.unwrap();
    }

    /// Goes to `path` on the console (`/ui/login`), or to a full URL.
    pub async fn goto(&self, path: &str) {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) };
        self.client.goto(&url).await.unwrap_or_else(|e| panic!("could not open {url}: {e}"));
    }

    /// The current URL's path and query (`/ui/envs/shop`).
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// What the page shows: the body's rendered text.
    pub async fn text(&self) -> String {
        self.eval("return document.body ? document.body.innerText : ''").await.as_str().unwrap_or_default().to_owned()
    }

    /// The rendered text of the element `css` ("" when there is none).
    pub async fn text_of(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''";
        self.client.execute(script, vec![json!(css)]).await.unwrap().as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body; `return` its value) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Where the browser is and what it shows, for failure messages.
    pub async fn describe(&self) -> String {
        let text = self.text().await;
        let cut = text.char_indices().nth(3000).map_or(text.len(), |(i, _)| i);
        let errors = self.console_errors().await;
        let errors =
            if errors.is_empty() { String::new() } else { format!("\nbrowser console errors:\n{}", errors.join("\n")) };
        format!(
            "at {}, the page says:\n{}{}{errors}",
            self.path().await,
            &text[..cut],
            if cut < text.len() { "\n…" } else { "" }
        )
    }

    /// The browser console's errors since last asked (script errors, refused requests, CSP).
    pub async fn console_errors(&self) -> Vec<String> {
        let Ok(entries) = self.client.issue_cmd(BrowserLog).await else { return vec![] };
        let entries = entries.as_array().cloned().unwrap_or_default();
        entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The element `css`, once it is on the page (within [`WAIT`]).
    pub async fn find(&self, css: &str) -> Element {
        self.wait_element(css, WAIT).await
    }

    /// Types `value` into the field `css` (`#name`, `input[name=token]`), replacing what it held.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap_or_else(|e| panic!("could not clear {css}: {e}"));
        field.send_keys(value).await.unwrap_or_else(|e| panic!("could not type into {css}: {e}"));
    }

    /// Picks the option whose value is `value` in the `<select>` `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.select_by_value(value).await.unwrap_or_else(|e| panic!("{css} has no option {value:?}: {e}"));
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        element.click().await.unwrap_or_else(|e| panic!("could not click {css}: {e}"));
    }

    /// Clicks the button (or submit input, or link) whose label is `label`, once there.
    pub async fn click_button(&self, label: &str) {
        let l = xpath_literal(label);
        let xpath = format!(
            "//button[normalize-space(.)={l}] | //input[(@type='submit' or @type='button') and @value={l}] | //a[normalize-space(.)={l}]"
        );
        let started = Instant::now();
        let element = loop {
            if let Ok(element) = self.client.find(Locator::XPath(&xpath)).await {
                break element;
            }
            if started.elapsed() > WAIT {
                panic!("no button or link labelled {label:?} within {WAIT:?}, {}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        element.click().await.unwrap_or_else(|e| panic!("could not click {label:?}: {e}"));
    }

    /// Waits until the element `css` is on the page; fails with what the page shows.
    pub async fn wait_element(&self, css: &str, within: Duration) -> Element {
        let started = Instant::now();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                return element;
            }
            if started.elapsed() > within {
                panic!("no element {css} within {within:?}, {}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element `css` is gone from the page.
    pub async fn wait_gone(&self, css: &str, within: Duration) {
        let started = Instant::now();
        while self.client.find(Locator::Css(css)).await.is_ok() {
            if started.elapsed() > within {
                panic!("{css} still there after {within:?}, {}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page's text contains `text`; fails with what the page shows.
    pub async fn wait_text(&self, text: &str, within: Duration) {
        let started = Instant::now();
        while !self.text().await.contains(text) {
            if started.elapsed() > within {
                panic!("the page did not show {text:?} within {within:?}, {}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element `css` shows `text`; returns all it shows then.
    pub async fn wait_text_in(&self, css: &str, text: &str, within: Duration) -> String {
        let started = Instant::now();
        loop {
            let shown = self.text_of(css).await;
            if shown.contains(text) {
                return shown;
            }
            if started.elapsed() > within {
                panic!("{css} did not show {text:?} within {within:?} (it shows {shown:?}), {}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the script `condition` (an expression) is true in the page.
    pub async fn wait_js(&self, condition: &str, within: Duration) {
        let started = Instant::now();
        while self.eval(&format!("return Boolean({condition})")).await != json!(true) {
            if started.elapsed() > within {
                panic!("{condition} was not true within {within:?}, {}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Turns the browser's cache off (or on) for the current tab: each page load then
    /// fetches its styles and scripts again, as a first visit does.
    pub async fn disable_cache(&self, disabled: bool) {
        self.client.issue_cmd(Cdp("Network.enable", json!({}))).await.unwrap();
        self.client.issue_cmd(Cdp("Network.setCacheDisabled", json!({"cacheDisabled": disabled}))).await.unwrap();
    }

    /// Waits until the current path starts with `prefix` (after a redirect, a submit).
    pub async fn wait_path(&self, prefix: &str, within: Duration) -> String {
        let started = Instant::now();
        loop {
            let path = self.path().await;
            if path.starts_with(prefix) {
                return path;
            }
            if started.elapsed() > within {
                panic!("not at {prefix} within {within:?}, {}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves the page as it is at each of [`WIDTHS`], whole (up to 4000 px tall), as
    /// `<page>-<width>.png`, then gives the viewport back its size. The page is not
    /// reloaded: live streams stay open.
    pub async fn shoot(&self, page: &str) {
        for (width, height) in WIDTHS {
            // The page's height at this width, once laid out again; a taller viewport can
            // change the layout (the page's own min-height), so measure until it holds.
            let mut tall = height;
            for _ in 0..3 {
                self.viewport((width, tall)).await;
                let full = self.laid_out_height().await.clamp(height, MAX_SHOT_HEIGHT);
                if full == tall {
                    break;
                }
                tall = full;
            }
            let wide = self.eval("return document.documentElement.scrollWidth").await.as_u64().unwrap_or(0) as u32;
            if wide > width {
                let culprits = self
                    .eval(&format!(
                        "return [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > {width} + 1)
                            .filter((e) => !e.closest('.scroll') || getComputedStyle(e).position === 'absolute')
                            .slice(0, 3).map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''))"
                    ))
                    .await;
                let note =
                    format!("{page} at {width} px is {wide} px wide (a phone zooms it out); past the edge: {culprits}");
                eprintln!("screenshots: {note}");
                self.too_wide.lock().unwrap().push(note);
            }
            let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot of {page} at {width}: {e}"));
            std::fs::write(self.shots.join(format!("{page}-{width}.png")), png).unwrap();
        }
        self.viewport(self.size).await;
    }

    /// The document's height after the next two frames (a viewport change laid out).
    async fn laid_out_height(&self) -> u32 {
        let script = "const done = arguments[arguments.length - 1];
            requestAnimationFrame(() => requestAnimationFrame(() => done(document.documentElement.scrollHeight)));";
        let height =
            self.client.execute_async(script, vec![]).await.unwrap_or_else(|e| panic!("measuring the page: {e}"));
        height.as_u64().unwrap_or(0) as u32
    }

    /// Clicks the button labelled `label`, which asks first (`data-confirm`): accepts the
    /// browser's dialog and returns its question.
    pub async fn click_confirming(&self, label: &str) -> String {
        self.click_button(label).await;
        self.accept_dialog().await
    }

    /// As [`Browser::click_confirming`], for the element `css`.
    pub async fn click_css_confirming(&self, css: &str) -> String {
        self.click(css).await;
        self.accept_dialog().await
    }

    async fn accept_dialog(&self) -> String {
        let started = Instant::now();
        loop {
            if let Ok(question) = self.client.get_alert_text().await {
                self.client.accept_alert().await.unwrap();
                return question;
            }
            if started.elapsed() > Duration::from_secs(3) {
                panic!("no confirmation was asked within 3 s, {}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Chooses the file at `path` in the file input `css`.
    pub async fn choose_file(&self, css: &str, path: &std::path::Path) {
        let input = self.find(css).await;
        input
            .send_keys(path.to_str().unwrap())
            .await
            .unwrap_or_else(|e| panic!("could not choose {} in {css}: {e}", path.display()));
    }

    /// Opens a new tab and makes it the current one (at the same viewport size).
    pub async fn new_tab(&self) -> fantoccini::wd::WindowHandle {
        let tab = self.client.new_window(true).await.unwrap().handle;
        self.client.switch_to_window(tab.clone()).await.unwrap();
        self.viewport(self.size).await;
        tab
    }

    /// Makes `tab` the current one.
    pub async fn switch_to(&self, tab: &fantoccini::wd::WindowHandle) {
        self.client.switch_to_window(tab.clone()).await.unwrap();
    }

    /// The current tab's handle.
    pub async fn tab(&self) -> fantoccini::wd::WindowHandle {
        self.client.window().await.unwrap()
    }

    /// From the next page on in the current tab, every `EventSource` the page opens is kept
    /// in `window.__sources` (with its URL, and each event's name and arrival time in
    /// `window.__events` and, across pages, the tab's session storage), so a test can see
    /// whether a live stream is open, closed, or what came on it. Installed before any of
    /// the page's scripts run.
    pub async fn track_event_sources(&self) {
        let source = r#"(() => {
            const Real = window.EventSource;
            if (!Real || Real.__tracked) return;
            window.__sources = []; window.__events = [];
            const Tracked = function (url, options) {
                const s = new Real(url, options);
                window.__sources.push(s);
                const note = (name) => (e) => {
                    const event = {url: String(url), name, at: Date.now(), page: location.pathname, data: e && e.data};
                    window.__events.push(event);
                    // Kept in the tab's session storage too: a page that goes elsewhere on
                    // an event (signed out) leaves its record behind.
                    const kept = JSON.parse(sessionStorage.getItem("__events") || "[]");
                    kept.push({url: event.url, name, at: event.at, page: event.page});
                    sessionStorage.setItem("__events", JSON.stringify(kept.slice(-50)));
                };
                ["open", "error", "fragments", "line", "end", "signed-out"].forEach((n) => s.addEventListener(n, note(n)));
                return s;
            };
            Tracked.prototype = Real.prototype;
            Tracked.CONNECTING = 0; Tracked.OPEN = 1; Tracked.CLOSED = 2; Tracked.__tracked = true;
            window.EventSource = Tracked;
        })();"#;
        self.client.issue_cmd(Cdp("Page.addScriptToEvaluateOnNewDocument", json!({"source": source}))).await.unwrap();
    }

    /// The names of the events that came on tracked streams whose URL contains `part`,
    /// in this tab, across the pages it went through (the last 50).
    pub async fn stream_events(&self, part: &str) -> Vec<String> {
        let kept = self.eval("return JSON.parse(sessionStorage.getItem('__events') || '[]')").await;
        let kept = kept.as_array().cloned().unwrap_or_default();
        kept.iter()
            .filter(|e| e["url"].as_str().unwrap_or_default().contains(part))
            .map(|e| e["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The page's tracked event streams: (URL, readyState: 0 connecting, 1 open, 2 closed).
    pub async fn event_sources(&self) -> Vec<(String, u64)> {
        let found = self.eval("return (window.__sources || []).map((s) => [s.url, s.readyState])").await;
        found.as_array().unwrap().iter().map(|s| (s[0].as_str().unwrap().to_owned(), s[1].as_u64().unwrap())).collect()
    }

    /// Limits the current tab's upload rate to `bytes_per_second` (None: no limit), so an
    /// upload lasts long enough to show its progress.
    pub async fn throttle_upload(&self, bytes_per_second: Option<u64>) {
        self.client.issue_cmd(Cdp("Network.enable", json!({}))).await.unwrap();
        let conditions = json!({
            "offline": false, "latency": 0, "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second.map_or(-1, |b| b as i64),
        });
        self.client.issue_cmd(Cdp("Network.emulateNetworkConditions", conditions)).await.unwrap();
    }

    /// The browser's cookies for the console, as a `Cookie` header.
    pub async fn cookie_header(&self) -> String {
        let cookies = self.client.get_all_cookies().await.unwrap();
        cookies.iter().map(|c| format!("{}={}", c.name(), c.value())).collect::<Vec<_>>().join("; ")
    }

    /// GETs `path` as this browser would (its cookies), without following redirects:
    /// the status and the body.
    pub async fn fetch(&self, path: &str) -> (u16, String) {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let response = client
            .get(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header().await)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    }

    /// The pages [`Browser::shoot`] found wider than the width they were shot at.
    pub fn too_wide(&self) -> Vec<String> {
        self.too_wide.lock().unwrap().clone()
    }

    /// The folder this test's screenshots go to.
    pub fn screenshots(&self) -> &std::path::Path {
        &self.shots
    }

    /// Ends the session (Chromium exits), then stops chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// chromedriver until the browser owns it: stopped if the session could not start.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(mut driver) = self.0.take() {
            stop_group(&mut driver);
        }
    }
}

/// SIGTERM to the child's process group (chromedriver and every Chromium process it
/// started), by the child's pid; waits up to 5 s for the group to empty, then SIGKILL.
fn stop_group(child: &mut Child) {
    let group = child.id() as i32;
    // Only while the child is not reaped can its pid (the group's id) not be reused.
    if child.try_wait().is_ok_and(|exited| exited.is_none()) {
        unsafe { libc::kill(-group, libc::SIGTERM) };
    }
    let started = Instant::now();
    loop {
        let _ = child.try_wait();
        // kill(-group, 0) fails (ESRCH) once no process is left in the group.
        if unsafe { libc::kill(-group, 0) } != 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(5) {
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        stop_group(&mut self.driver);
    }
}
