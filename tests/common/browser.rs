//! A real browser for the admin page's tests: Debian's chromium, headless, driven through
//! chromedriver (started on a free port) by fantoccini. Everything is stopped by PID.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use rocket::tokio::runtime::Runtime;

use crate::common::process::{free_port, Proc};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser session, on a runtime of its own (the calls below block).
pub struct Browser {
    rt: Runtime,
    client: Option<Client>,
    driver: Option<Proc>,
    profile: tempfile::TempDir,
}

/// Only one browser at a time: two chromiums on a small CI machine make both slow.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` with a fresh browser, then stops it.
pub fn with_browser(f: impl FnOnce(&Browser)) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let browser = Browser::start();
    f(&browser);
}

impl Browser {
    fn start() -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: the admin page's browser tests need Debian's chromium and \
                 its WebDriver. Install them with `apt-get install chromium chromium-driver` \
                 (.ci/run does)"
            );
        }
        let rt = rocket::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        // A port taken between free_port and chromedriver's bind: try another.
        loop {
            let port = free_port();
            let driver = Proc(
                Command::new(CHROMEDRIVER)
                    .arg(format!("--port={port}"))
                    // Chromium's crash handler keeps its database under HOME: this profile.
                    .env("HOME", profile.path())
                    .env("XDG_CONFIG_HOME", profile.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("chromedriver starts"),
            );
            let mut caps = fantoccini::wd::Capabilities::new();
            caps.insert(
                "goog:chromeOptions".into(),
                serde_json::json!({
                    "binary": CHROMIUM,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--disable-dev-shm-usage", "--window-size=1100,800",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                }),
            );
            let url = format!("http://127.0.0.1:{port}");
            let connected = rt.block_on(async {
                loop {
                    let c = ClientBuilder::new(
                        hyper_util::client::legacy::connect::HttpConnector::new(),
                    )
                    .capabilities(caps.clone())
                    .connect(&url)
                    .await;
                    match c {
                        Ok(c) => return Ok(c),
                        Err(e) if Instant::now() > deadline => return Err(e.to_string()),
                        // chromedriver not listening yet.
                        Err(_) => rocket::tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
            match connected {
                Ok(client) => {
                    return Browser {
                        rt,
                        client: Some(client),
                        driver: Some(driver),
                        profile,
                    }
                }
                Err(e) if Instant::now() > deadline => panic!("no browser session: {e}"),
                Err(_) => continue,
            }
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Loads `url` and waits for it.
    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.client().goto(url)).unwrap();
    }

    fn find(&self, css: &str) -> Element {
        self.rt
            .block_on(self.client().find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}\n{}", self.source()))
    }

    /// The text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.rt.block_on(e.text()).unwrap()
    }

    /// An attribute of the first element matching `css`.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let e = self.find(css);
        self.rt.block_on(e.attr(name)).unwrap()
    }

    /// How many elements match `css`.
    pub fn count(&self, css: &str) -> usize {
        self.rt
            .block_on(self.client().find_all(Locator::Css(css)))
            .unwrap()
            .len()
    }

    /// Types `value` into the field matching `css` (cleared first).
    pub fn fill(&self, css: &str, value: &str) {
        let e = self.find(css);
        self.rt.block_on(e.clear()).unwrap();
        self.rt.block_on(e.send_keys(value)).unwrap();
    }

    /// Picks the option of value `value` in the select matching `css`.
    pub fn select(&self, css: &str, value: &str) {
        let e = self.find(css);
        self.rt.block_on(e.select_by_value(value)).unwrap();
    }

    /// Clicks the element matching `css` (a submit button: waits for the next page).
    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.rt.block_on(e.click()).unwrap();
    }

    /// Clicks the submit button matching `css` and waits (30 s at most) until the next page
    /// has loaded (the old one is marked first: the next may have the same URL).
    pub fn submit(&self, css: &str) {
        self.js("document.documentElement.dataset.old = '1'");
        self.click(css);
        let deadline = Instant::now() + Duration::from_secs(30);
        let loaded =
            "return !document.documentElement.dataset.old && document.readyState === 'complete'";
        while self.js(loaded) != serde_json::Value::Bool(true) {
            assert!(
                Instant::now() < deadline,
                "no new page after clicking `{css}`"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `script` in the page and returns its value.
    pub fn js(&self, script: &str) -> serde_json::Value {
        self.rt
            .block_on(self.client().execute(script, vec![]))
            .unwrap()
    }

    /// The page's current HTML.
    pub fn source(&self) -> String {
        self.rt.block_on(self.client().source()).unwrap_or_default()
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.rt
            .block_on(self.client().current_url())
            .unwrap()
            .to_string()
    }

    /// Saves a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.rt.block_on(self.client().screenshot()).unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(async {
                rocket::tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        drop(self.driver.take());
        // Whatever is left of chromium, by PID: the processes whose command line names this
        // session's profile (its HOME too, so crash handlers are among them), and theirs.
        let profile = self.profile.path().display().to_string();
        let mut doomed: Vec<u32> = Vec::new();
        for _ in 0..5 {
            for (pid, ppid, cmdline) in processes() {
                if !doomed.contains(&pid) && (cmdline.contains(&profile) || doomed.contains(&ppid))
                {
                    doomed.push(pid);
                }
            }
        }
        for pid in doomed {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// Every process: PID, parent PID, command line.
fn processes() -> Vec<(u32, u32, String)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (name) state ppid ...`: the name may hold spaces, so read after the last `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        all.push((pid, ppid, String::from_utf8_lossy(&cmdline).into_owned()));
    }
    all
}
