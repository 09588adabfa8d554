//! A real browser for the dashboard's tests: Debian's chromium, headless,
//! driven through chromedriver (WebDriver) with fantoccini, and the
//! dashboard itself as a `kubectl-signalman dashboard` process.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::operator::free_port;

/// `$CHROMEDRIVER`, else /usr/bin/chromedriver.
fn chromedriver_bin() -> PathBuf {
    std::env::var_os("CHROMEDRIVER")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

/// `$CHROMIUM`, else /usr/bin/chromium.
fn chromium_bin() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// chromedriver and one headless chromium session; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Start chromedriver on a free port and open a session of `width` x `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let driver_bin = chromedriver_bin();
        assert!(
            driver_bin.exists() && chromium_bin().exists(),
            "{} or {} is missing: apt-get install -y chromium chromium-driver (or set CHROMEDRIVER and CHROMIUM)",
            driver_bin.display(),
            chromium_bin().display()
        );
        let port = free_port().port();
        let log = crate::scratch_dir().join(format!("chromedriver-{port}.log"));
        // Its own process group: chromium is chromedriver's child and outlives
        // a killed chromedriver, so on drop the whole group is ended.
        let driver = Command::new(&driver_bin)
            .process_group(0)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver_bin.display()));
        let url = format!("http://127.0.0.1:{port}");
        crate::wait_for(
            "chromedriver to listen",
            Duration::from_secs(20),
            || async {
                Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ()))
            },
        )
        .await;
        let profile = crate::scratch_dir().join(format!("chromium-profile-{port}"));
        let _ = std::fs::remove_dir_all(&profile);
        // Without the background-networking switches, chromium waits on
        // connections this machine refuses (no internet) and hangs.
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-quic".to_string(),
            "--no-first-run".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--hide-scrollbars".to_string(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium_bin(), "args": args}),
        );
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let client = builder.connect(&url).await.unwrap_or_else(|e| {
            panic!(
                "a chromium session through chromedriver (log: {}): {e}",
                log.display()
            )
        });
        Browser {
            client,
            driver,
            profile,
        }
    }

    /// End the session (chromedriver quits chromium); drop ends what is left.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The value of `script` (a function body: `return ...`) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("running {script:?} in the page: {e}"))
    }

    /// Until `script` returns something other than null/false; that value.
    pub async fn wait_js(&self, what: &str, timeout: Duration, script: &str) -> Value {
        crate::wait_for(what, timeout, || async {
            let v = self.client.execute(script, vec![]).await?;
            Ok(match v {
                Value::Null | Value::Bool(false) => None,
                v => Some(v),
            })
        })
        .await
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.expect("a screenshot")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group chromedriver leads: chromedriver, chromium and its helpers.
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `kubectl-signalman dashboard` as a process on a free port of 127.0.0.1.
pub struct Dashboard {
    pub port: u16,
    child: Child,
}

impl Dashboard {
    /// Start it with `args` (e.g. `["-n", ns]`, `["--allow-actions"]`) and
    /// wait until it says where it serves.
    pub async fn start(args: &[&str]) -> Dashboard {
        let port = free_port().port();
        let mut child = Command::new(crate::plugin::plugin_bin())
            .arg("dashboard")
            .args(args)
            .arg("--port")
            .arg(port.to_string())
            .arg("--kubeconfig")
            .arg(crate::kubeconfig_path())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting kubectl-signalman dashboard");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the dashboard to start within 30 s")
            .expect("reading the dashboard's output")
            .expect("the dashboard to say where it serves");
        eprintln!("$ kubectl signalman dashboard {}\n{first}", args.join(" "));
        assert!(
            first.contains(&format!("http://127.0.0.1:{port}/")),
            "{first}"
        );
        Dashboard { port, child }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// A raw HTTP/1.1 request to the dashboard, as any local process (or a
    /// page's forged form) could send it: the status line's code and the body.
    pub async fn raw(&self, request: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connecting to the dashboard");
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, text)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
