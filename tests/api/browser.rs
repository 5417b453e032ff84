//! A real browser for the console's and the playground's tests: Debian's
//! `chromium`, driven by its `chromedriver` over WebDriver, which is plain
//! HTTP and JSON, so reqwest (already here) is the whole client.
//!
//! Elements are found as a person finds them: by role and accessible name
//! (a label, `aria-label`, the button's text), never by CSS class. A test
//! body that panics leaves a screenshot in `target/browser-failures/`.
//!
//! Without chromium or chromedriver the tests say so loudly and skip; under
//! `CI=true` they fail instead (`.ci/run` installs both).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::FutureExt;
use serde_json::{json, Value};

/// The flags this machine's closed network needs (Chromium's background
/// connections are refused otherwise), plus a fresh profile per browser.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// How long a lookup waits for its element to appear.
pub const WAIT: Duration = Duration::from_secs(5);

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The chromium binary itself (Debian's `/usr/bin/chromium` is a wrapper
/// script that adds flags of its own), and chromedriver.
fn binaries() -> Option<(PathBuf, PathBuf)> {
    let chromium = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())?;
    let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())?;
    Some((chromium, driver))
}

/// Finds elements by role and accessible name, a small subset of the ARIA
/// rules that covers what the pages use. Arguments: role, name, whether the
/// name must match exactly (else: contains), and a root element or null.
const BY_ROLE: &str = r#"
const [role, name, exact, root] = arguments;
const implicit = (el) => {
  const t = el.tagName.toLowerCase();
  const type = (el.getAttribute('type') || '').toLowerCase();
  switch (t) {
    case 'button': case 'summary': return 'button';
    case 'a': return el.hasAttribute('href') ? 'link' : null;
    case 'input':
      if (type === 'checkbox') return 'checkbox';
      if (type === 'radio') return 'radio';
      if (['button', 'submit', 'reset'].includes(type)) return 'button';
      if (type === 'search') return 'searchbox';
      if (type === 'hidden') return null;
      return 'textbox';
    case 'textarea': return 'textbox';
    case 'select': return el.multiple ? 'listbox' : 'combobox';
    case 'option': return 'option';
    case 'h1': case 'h2': case 'h3': case 'h4': case 'h5': case 'h6': return 'heading';
    case 'table': return 'table';
    case 'tr': return 'row';
    case 'td': return 'cell';
    case 'th': return 'columnheader';
    case 'ul': case 'ol': return 'list';
    case 'li': return 'listitem';
    case 'nav': return 'navigation';
    case 'main': return 'main';
    case 'dialog': return 'dialog';
    case 'form': return 'form';
    case 'section': return 'region';
    default: return null;
  }
};
const roleOf = (el) => (el.getAttribute('role') || '').split(' ')[0] || implicit(el);
const text = (el) => (el.innerText || el.textContent || '').replace(/\s+/g, ' ').trim();
const nameOf = (el) => {
  const by = el.getAttribute('aria-labelledby');
  if (by) return by.split(/\s+/).map((id) => { const e = document.getElementById(id); return e ? text(e) : ''; }).join(' ').trim();
  const label = el.getAttribute('aria-label');
  if (label) return label.trim();
  if (el.labels && el.labels.length) return Array.from(el.labels).map(text).join(' ').trim();
  const t = el.tagName.toLowerCase();
  if (['input', 'textarea', 'select'].includes(t)) return (el.getAttribute('title') || el.getAttribute('placeholder') || '').trim();
  if (t === 'img') return (el.getAttribute('alt') || '').trim();
  return text(el) || (el.getAttribute('title') || '').trim();
};
const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
// A closed <select>'s options have no boxes; they count as shown with it.
const visible = (el) => shown(el.tagName === 'OPTION' && el.closest('select') ? el.closest('select') : el);
return Array.from((root || document).querySelectorAll('*')).filter((el) => {
  if (roleOf(el) !== role || !visible(el)) return false;
  if (name === null) return true;
  const n = nameOf(el);
  return exact ? n === name : n.includes(name);
});
"#;

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    name: String,
    _profile: tempfile::TempDir,
}

/// An element reference, valid while its page lives.
#[derive(Clone, Debug)]
pub struct El(pub Value);

impl El {
    fn id(&self) -> String {
        self.0[ELEMENT].as_str().unwrap_or_default().to_string()
    }
}

impl Browser {
    /// A headless chromium for the test `name`; `None` (after a loud
    /// warning) when chromium is not installed and this is not CI.
    pub async fn start(name: &str) -> Option<Self> {
        let Some((chromium, driver_bin)) = binaries() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
            }
            eprintln!(
                "\n!!! SKIPPING the browser test {name}: chromium or chromedriver is not installed.\n!!! apt-get install chromium chromium-driver to run it.\n"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut command = Command::new(driver_bin);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that dropping the browser ends the
        // driver and every chromium process it started, and nothing else.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn().expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(r) = ready {
                if r.json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["value"]["ready"].as_bool())
                    == Some(true)
                {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("new session json");
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"));
        let browser = Browser {
            http,
            session: format!("{base}/session/{id}"),
            driver,
            name: name.to_string(),
            _profile: profile,
        };
        browser
            .cmd(
                "POST",
                "/window/rect",
                json!({ "width": 1280, "height": 900 }),
            )
            .await;
        Some(browser)
    }

    /// Sends one WebDriver command; panics with the driver's message on an
    /// error.
    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let v = self.try_cmd(method, path, body).await;
        if let Some(err) = v.get("error") {
            panic!("WebDriver {method} {path}: {err}: {}", v["message"]);
        }
        v
    }

    async fn try_cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let res = req.send().await.expect("chromedriver answers");
        let v: Value = res.json().await.expect("chromedriver json");
        v["value"].clone()
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await;
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url })).await;
    }

    pub async fn current_url(&self) -> String {
        self.cmd("GET", "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` in the page (its `arguments` are `args`).
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    async fn all_now(
        &self,
        role: &str,
        name: Option<&str>,
        exact: bool,
        root: Option<&El>,
    ) -> Vec<El> {
        let root = root.map(|r| r.0.clone()).unwrap_or(Value::Null);
        let found = self.eval(BY_ROLE, json!([role, name, exact, root])).await;
        found
            .as_array()
            .map(|a| a.iter().cloned().map(El).collect())
            .unwrap_or_default()
    }

    /// Waits for the one element with this role and accessible name.
    pub async fn get(&self, role: &str, name: &str) -> El {
        self.get_in(None, role, name, true).await
    }

    /// Waits for the one element with this role whose name contains `part`.
    pub async fn get_containing(&self, role: &str, part: &str) -> El {
        self.get_in(None, role, part, false).await
    }

    /// As `get`, among `root`'s descendants (`exact` false: name contains).
    pub async fn get_in(&self, root: Option<&El>, role: &str, name: &str, exact: bool) -> El {
        let started = Instant::now();
        loop {
            let found = self.all_now(role, Some(name), exact, root).await;
            match found.len() {
                1 => return found.into_iter().next().unwrap_or_else(|| unreachable!()),
                0 if started.elapsed() < WAIT => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                0 => panic!("no {role} named {name:?} within {WAIT:?}"),
                n => panic!("{n} elements with role {role} named {name:?}"),
            }
        }
    }

    /// All visible elements with this role (and name, if given), now.
    pub async fn all(&self, role: &str, name: Option<&str>) -> Vec<El> {
        self.all_now(role, name, true, None).await
    }

    /// Waits until no element with this role and name is visible.
    pub async fn gone(&self, role: &str, name: &str) {
        self.until(&format!("no {role} {name:?}"), || async {
            self.all_now(role, Some(name), true, None).await.is_empty()
        })
        .await
    }

    /// Waits for `check` to hold, for `WAIT` at most.
    pub async fn until<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        self.until_within(what, WAIT, check).await
    }

    pub async fn until_within<F, Fut>(&self, what: &str, within: Duration, check: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        let started = Instant::now();
        while !check().await {
            assert!(started.elapsed() < within, "waited {within:?} for: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, el: &El) {
        self.cmd("POST", &format!("/element/{}/click", el.id()), json!({}))
            .await;
    }

    /// Types `text` into the element (WebDriver keys: "\u{E007}" is Enter).
    pub async fn type_into(&self, el: &El, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{}/value", el.id()),
            json!({ "text": text }),
        )
        .await;
    }

    pub async fn clear(&self, el: &El) {
        self.cmd("POST", &format!("/element/{}/clear", el.id()), json!({}))
            .await;
    }

    /// Presses keys wherever the focus is, as a person at the keyboard.
    pub async fn keys(&self, text: &str) {
        let mut actions = Vec::new();
        for c in text.chars() {
            actions.push(json!({ "type": "keyDown", "value": c.to_string() }));
            actions.push(json!({ "type": "keyUp", "value": c.to_string() }));
        }
        self.cmd(
            "POST",
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] }),
        )
        .await;
        self.try_cmd("DELETE", "/actions", Value::Null).await;
    }

    /// Presses `key` with Control held (WebDriver's Control is U+E009).
    pub async fn ctrl(&self, key: &str) {
        let actions = json!([
            { "type": "keyDown", "value": "\u{E009}" },
            { "type": "keyDown", "value": key },
            { "type": "keyUp", "value": key },
            { "type": "keyUp", "value": "\u{E009}" },
        ]);
        self.cmd(
            "POST",
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] }),
        )
        .await;
        self.try_cmd("DELETE", "/actions", Value::Null).await;
    }

    pub async fn text(&self, el: &El) -> String {
        self.cmd("GET", &format!("/element/{}/text", el.id()), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn value(&self, el: &El) -> String {
        self.cmd(
            "GET",
            &format!("/element/{}/property/value", el.id()),
            Value::Null,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    pub async fn is_selected(&self, el: &El) -> bool {
        self.cmd(
            "GET",
            &format!("/element/{}/selected", el.id()),
            Value::Null,
        )
        .await
        .as_bool()
        .unwrap_or(false)
    }

    /// The whole page's visible text.
    pub async fn page_text(&self) -> String {
        self.eval("return document.body.innerText", json!([]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits for `part` to appear in the page's text.
    pub async fn see(&self, part: &str) {
        let started = Instant::now();
        loop {
            let text = self.page_text().await;
            if text.contains(part) {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "waited {WAIT:?} to see {part:?}; the page says:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The browser console's messages since the last call (CSP violations
    /// are reported there).
    pub async fn console_log(&self) -> Vec<String> {
        let v = self
            .try_cmd("POST", "/se/log", json!({ "type": "browser" }))
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"],
                            e["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn screenshot(&self, path: &Path) {
        let png = self.try_cmd("GET", "/screenshot", Value::Null).await;
        let Some(data) = png.as_str() else { return };
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::write(path, bytes);
        }
    }

    /// Runs a test body; if it panics, saves a screenshot first.
    pub async fn check<F: Future<Output = ()>>(&self, body: F) {
        let outcome = std::panic::AssertUnwindSafe(body).catch_unwind().await;
        if let Err(panic) = outcome {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/browser-failures")
                .join(format!("{}.png", self.name));
            self.screenshot(&path).await;
            for line in self.console_log().await {
                eprintln!("browser console: {line}");
            }
            eprintln!(
                "browser test {} failed; screenshot: {}",
                self.name,
                path.display()
            );
            std::panic::resume_unwind(panic);
        }
    }

    /// Ends the driver and every browser process it started (their own
    /// process group, see `start`).
    fn kill(&mut self) {
        let group = self.driver.id() as i32;
        // SAFETY: a plain system call on the process group this browser
        // started; it names no memory.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(None) = self.driver.try_wait() {
            self.kill();
        }
    }
}
