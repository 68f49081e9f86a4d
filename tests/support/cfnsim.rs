//! The CloudFormation scenario simulator (`simulator/cfnsim.py`) for tests: started on a free
//! loopback port with a scenario, stopped on Drop, and never orphaned (it exits by itself when
//! the pipe on its stdin closes, which the kernel does if this test process dies).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Simulator {
    child: Child,
    pub endpoint: String,
    _scenario: tempfile::NamedTempFile,
}

impl Simulator {
    /// Starts the simulator with a scenario (see simulator/README.md) and a time scale
    /// (simulated seconds per real second).
    pub fn start(scenario: &serde_json::Value, time_scale: f64) -> Simulator {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup first",
            python.display()
        );
        let mut file = tempfile::NamedTempFile::new().expect("scenario file");
        file.write_all(scenario.to_string().as_bytes())
            .expect("write scenario");
        let mut child = Command::new(&python)
            .arg(root.join("simulator/cfnsim.py"))
            .args(["--port", "0", "--exit-on-stdin-eof", "--time-scale"])
            .arg(time_scale.to_string())
            .arg("--scenario")
            .arg(file.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the simulator");
        let stdout = child.stdout.take().expect("simulator stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("simulator's first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .map(str::to_string);
        let mut sim = Simulator {
            child,
            endpoint: String::new(),
            _scenario: file,
        };
        sim.endpoint = format!(
            "http://{}",
            addr.unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        );
        sim
    }

    /// `GET /_sim/<path>` as JSON (async tests).
    pub async fn get(&self, path: &str) -> serde_json::Value {
        let url = format!("{}/_sim/{path}", self.endpoint);
        let response = reqwest::get(&url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    /// `POST /_sim/<path>` with an optional JSON body (async tests).
    pub async fn post(&self, path: &str, body: Option<&serde_json::Value>) -> serde_json::Value {
        let url = format!("{}/_sim/{path}", self.endpoint);
        let mut request = reqwest::Client::new().post(&url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    /// `GET /_sim/<path>` as JSON, from a blocking test.
    pub fn admin_get(&self, path: &str) -> serde_json::Value {
        let url = format!("{}/_sim/{path}", self.endpoint);
        let body = ureq_like("GET", &url, None);
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
    }

    /// `POST /_sim/<path>` with an optional JSON body.
    pub fn admin_post(&self, path: &str, body: Option<&serde_json::Value>) -> serde_json::Value {
        let url = format!("{}/_sim/{path}", self.endpoint);
        let text = ureq_like("POST", &url, body.map(|b| b.to_string()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
    }

    /// How many requests of `action` the simulator answered (throttled ones included).
    pub fn requests(&self, action: &str) -> u64 {
        self.admin_get("stats")["requests"][action]
            .as_u64()
            .unwrap_or(0)
    }
}

/// A blocking HTTP call without pulling in another client: reqwest's blocking API needs a
/// feature we do not build, so use a small current-thread runtime.
fn ureq_like(method: &str, url: &str, body: Option<String>) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = url.to_string();
    let method = method.to_string();
    std::thread::spawn(move || {
        rt.block_on(async move {
            let client = reqwest::Client::new();
            let mut request = if method == "GET" {
                client.get(&url)
            } else {
                client.post(&url)
            };
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body);
            }
            request
                .send()
                .await
                .expect("admin request")
                .text()
                .await
                .expect("admin response")
        })
    })
    .join()
    .expect("admin thread")
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
