//! A headless Chromium the console tests drive over the Chrome DevTools
//! Protocol: one page, its network requests recorded, and the few commands
//! a test needs (go, evaluate, wait, click, type, press a key, read the
//! accessibility tree, take a screenshot).
//!
//! Chromium is Debian's `chromium` (`.ci/run` installs it), or the program
//! `CRM_CHROMIUM` names. The protocol is JSON over a WebSocket, spoken with
//! the WebSocket client the subscription tests already use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// Finds elements by what a user reads, for the helpers below.
const PRELUDE: &str = r"
const __text = (e) => (e.innerText || e.textContent || '').trim().replace(/\s+/g, ' ');
const __find = (selector, text) => [...document.querySelectorAll(selector)].find((e) => __text(e) === text);
const __field = (text) => {
  const label = [...document.querySelectorAll('label')].find((l) => __text(l).startsWith(text));
  if (!label) return null;
  return label.htmlFor ? document.getElementById(label.htmlFor) : label.querySelector('input, select, textarea');
};
";

pub struct Browser {
    child: Child,
    profile: PathBuf,
    sink: tokio::sync::Mutex<Sink>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    events: Arc<Mutex<Vec<Value>>>,
    next: AtomicU64,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    /// Starts headless Chromium with a new empty profile and opens a page.
    pub async fn launch() -> Browser {
        let program = std::env::var("CRM_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = std::env::temp_dir().join(format!("crm-chromium-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile).unwrap();
        let mut child = Command::new(&program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--window-size=1366,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "the console tests need headless Chromium ({program}: {err}): install Debian's `chromium` \
                     package (apt-get install chromium) or set CRM_CHROMIUM to a Chromium binary"
                )
            });
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("{program} exited before it listened for DevTools");
        })
        .await
        .expect("Chromium did not start within 60 s");
        // Chromium keeps writing to stderr: keep reading it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
        let (sink, mut stream) = socket.split();
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (reading, recording) = (pending.clone(), events.clone());
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else { continue };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                match value["id"].as_u64() {
                    Some(id) => {
                        if let Some(reply) = reading.lock().unwrap().remove(&id) {
                            let _ = reply.send(value);
                        }
                    }
                    None => recording.lock().unwrap().push(value),
                }
            }
        });
        let mut browser = Browser {
            child,
            profile,
            sink: tokio::sync::Mutex::new(sink),
            pending,
            events,
            next: AtomicU64::new(1),
            session: String::new(),
        };
        let target = browser
            .send(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = browser
            .send(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in ["Page.enable", "Network.enable", "Runtime.enable"] {
            browser.call(domain, json!({})).await;
        }
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": 1366, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
            )
            .await;
        browser
    }

    async fn send(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let (reply, answer) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, reply);
        self.sink
            .lock()
            .await
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(60), answer)
            .await
            .unwrap_or_else(|_| panic!("Chromium did not answer {method} within 60 s"))
            .unwrap();
        assert!(answer.get("error").is_none(), "{method} failed: {answer}");
        answer["result"].clone()
    }

    /// A DevTools command to the page.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.send(Some(&self.session.clone()), method, params).await
    }

    /// Opens `url` and waits until its document is loaded.
    pub async fn goto(&self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_for("the page to load", "document.readyState === 'complete'")
            .await;
    }

    /// The value of a JavaScript expression in the page (awaited when it is
    /// a promise); the helpers of `PRELUDE` are in scope.
    pub async fn eval(&self, expression: &str) -> Value {
        let expression = format!("(async () => {{ {PRELUDE}\n return ({expression}); }})()");
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "the page threw: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Waits (up to 30 s) for an expression to be truthy; its value.
    pub async fn wait_for(&self, what: &str, expression: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.eval(expression).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false)) && value != json!(0) && value != json!("");
            if truthy {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''").await;
                panic!(
                    "waited 30 s for {what}; the page reads:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page shows `text`.
    pub async fn see(&self, text: &str) {
        let expression = format!("document.body.innerText.includes({})", json!(text));
        self.wait_for(&format!("the page to show {text:?}"), &expression).await;
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.eval("document.body.innerText")
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Clicks the button or link that reads `text`, once it is there and
    /// enabled.
    pub async fn click(&self, text: &str) {
        let expression = format!(
            "(() => {{ const e = __find('button, a', {text}); if (!e || e.disabled) return false; e.click(); return true; }})()",
            text = json!(text)
        );
        self.wait_for(&format!("an enabled {text:?} to click"), &expression)
            .await;
    }

    /// Whether the button that reads `text` is disabled.
    pub async fn disabled(&self, text: &str) -> bool {
        let expression = format!(
            "(() => {{ const e = __find('button', {}); return e ? e.disabled : null; }})()",
            json!(text)
        );
        self.wait_for(&format!("a button {text:?}"), &format!("{expression} !== null"))
            .await;
        self.eval(&expression).await == json!(true)
    }

    /// Types `value` into the field labelled `label`, as a user does.
    pub async fn fill(&self, label: &str, value: &str) {
        let expression = format!(
            "(() => {{ const e = __field({label}); if (!e) return false; e.focus(); e.value = {value}; \
             e.dispatchEvent(new Event('input', {{ bubbles: true }})); \
             e.dispatchEvent(new Event('change', {{ bubbles: true }})); return true; }})()",
            label = json!(label),
            value = json!(value)
        );
        self.wait_for(&format!("a field labelled {label:?}"), &expression).await;
    }

    /// Ticks the checkbox (or picks the radio button) labelled `label`.
    pub async fn check(&self, label: &str) {
        let expression = format!(
            "(() => {{ const e = __field({label}); if (!e) return false; if (!e.checked) e.click(); return true; }})()",
            label = json!(label)
        );
        self.wait_for(&format!("a checkbox labelled {label:?}"), &expression)
            .await;
    }

    /// Presses a key (`Tab`, `Enter`, ` `) on the focused element, with
    /// Shift when `shift`.
    pub async fn press(&self, key: &str, shift: bool) {
        let (code, key_code) = match key {
            "Tab" => ("Tab", 9),
            "Enter" => ("Enter", 13),
            " " => ("Space", 32),
            other => panic!("no key code for {other}"),
        };
        let modifiers = if shift { 8 } else { 0 };
        for kind in ["rawKeyDown", "keyUp"] {
            let mut params = json!({
                "type": kind, "key": key, "code": code, "windowsVirtualKeyCode": key_code,
                "nativeVirtualKeyCode": key_code, "modifiers": modifiers,
            });
            if kind == "rawKeyDown" && key != "Tab" {
                self.call(
                    "Input.dispatchKeyEvent",
                    json!({ "type": "char", "text": if key == "Enter" { "\r" } else { key } }),
                )
                .await;
                params["type"] = json!("keyDown");
            }
            self.call("Input.dispatchKeyEvent", params).await;
        }
    }

    /// The page's accessibility tree, as Chromium exposes it to assistive
    /// technology.
    pub async fn accessibility_tree(&self) -> Vec<Value> {
        let tree = self.call("Accessibility.getFullAXTree", json!({})).await;
        tree["nodes"].as_array().cloned().unwrap_or_default()
    }

    /// Saves a PNG of the whole page.
    pub async fn screenshot(&self, path: &Path) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }

    /// Every URL the page has requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event["method"] == "Network.requestWillBeSent")
            .filter_map(|event| event["params"]["request"]["url"].as_str().map(str::to_owned))
            .collect()
    }

    /// The URLs the page requested outside `origin` (`http://host:port`);
    /// `data:` URLs (such as a date input's icon) are inline, not requests.
    pub fn requests_beyond(&self, origin: &str) -> Vec<String> {
        let inside = format!("{origin}/");
        self.requests()
            .into_iter()
            .filter(|url| !url.starts_with(&inside) && !url.starts_with("data:"))
            .collect()
    }
}
