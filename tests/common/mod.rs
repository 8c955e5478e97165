//! Test environment: moto's server (one per test binary, on a free loopback port), the
//! AWS-like layer in front of it (quotas, latency, faults, request recording), an SDK client
//! for seeding and inspecting pools, and a runner for the `cbr` binary.
//!
//! A test that needs moto and cannot start it fails with the reason; it never skips.

#![allow(dead_code)]

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeDataType, AttributeType, MessageActionType, SchemaAttributeType, UsernameAttributeType,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

pub mod production;
pub mod s3;
pub const REGION: &str = "us-east-1";

fn support(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(file)
}

/// The Python with moto installed: `CBR_TEST_PYTHON` (set by `.ci/test`) or `python3`.
fn python() -> String {
    std::env::var("CBR_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// A helper process that prints `LISTENING host:port` when ready and is killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    fn spawn(what: &str, args: &[String]) -> Server {
        let mut child = Command::new(python())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} with {}: {e}", python()));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Some(addr) = line.trim().strip_prefix("LISTENING ") else {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!(
                "{what} did not start (is moto[server]==5.2.1 installed? run `bash .ci/test`):\n{err}"
            );
        };
        // Drain stderr so the process never blocks on a full pipe.
        if let Some(mut e) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = e.read_to_end(&mut sink);
            });
        }
        Server {
            url: format!("http://{addr}"),
            child,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's server, shared by the tests of one binary; it exits when the binary does (its
/// stdin closes).
pub fn moto() -> &'static str {
    static MOTO: OnceLock<Server> = OnceLock::new();
    &MOTO
        .get_or_init(|| {
            Server::spawn(
                "moto",
                &[support("moto_server.py").to_string_lossy().into_owned()],
            )
        })
        .url
}

/// The AWS-like layer in front of moto, with extra options (`--quotas`, `--faults …`).
pub fn layer(options: &[&str]) -> Server {
    let mut args = vec![
        support("aws_layer.py").to_string_lossy().into_owned(),
        "--upstream".to_string(),
        moto().to_string(),
    ];
    args.extend(options.iter().map(|s| s.to_string()));
    Server::spawn("aws_layer.py", &args)
}

/// Layer statistics: `{"ops": {"Op": {"calls", "throttled", "faults"}}, ...}`.
pub fn layer_stats(layer: &Server) -> Value {
    let addr = layer.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to layer");
    use std::io::Write;
    write!(
        stream,
        "GET /_layer/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).expect("layer stats JSON")
}

/// Requests recorded by a layer started with `--record FILE`.
pub fn recorded(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("recorded JSON line"))
        .collect()
}

pub fn recorded_ops<'a>(records: &'a [Value], op: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["op"] == op)
        .map(|r| &r["body"])
        .collect()
}

/// An SDK client aimed at `endpoint`, with dummy credentials.
pub async fn client(endpoint: &str) -> Client {
    let creds = aws_sdk_cognitoidentityprovider::config::Credentials::new(
        "test", "test", None, None, "tests",
    );
    let config = aws_sdk_cognitoidentityprovider::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_cognitoidentityprovider::config::Region::new(REGION))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

/// A pool with the `custom:tenant` attribute the varied users and the fixtures use.
pub fn tenant_pool() -> PoolSpec {
    PoolSpec {
        custom_attributes: vec!["tenant"],
        ..Default::default()
    }
}

/// Options for a test pool.
#[derive(Default, Clone)]
pub struct PoolSpec {
    pub custom_attributes: Vec<&'static str>,
    pub sign_in_with_email: bool,
}

pub async fn create_pool(c: &Client, name: &str, spec: PoolSpec) -> String {
    let mut req = c.create_user_pool().pool_name(name);
    for attr in &spec.custom_attributes {
        req = req.schema(
            SchemaAttributeType::builder()
                .name(*attr)
                .attribute_data_type(AttributeDataType::String)
                .mutable(true)
                .build(),
        );
    }
    if spec.sign_in_with_email {
        req = req.username_attributes(UsernameAttributeType::Email);
    }
    let out = req.send().await.expect("create pool");
    out.user_pool().unwrap().id().unwrap().to_string()
}

/// A seeded user.
#[derive(Clone, Debug)]
pub struct Seed {
    pub username: String,
    pub attributes: Vec<(String, String)>,
    pub disabled: bool,
    pub confirmed: bool,
    pub groups: Vec<String>,
}

impl Seed {
    pub fn new(username: &str) -> Seed {
        Seed {
            username: username.to_string(),
            attributes: vec![("email".to_string(), format!("{username}@example.org"))],
            disabled: false,
            confirmed: false,
            groups: vec![],
        }
    }
}

/// A pool's worth of varied users: some confirmed, some disabled, some in groups, some with
/// phone numbers and custom attributes, names with non-ASCII characters.
pub fn varied_users(n: usize) -> Vec<Seed> {
    (0..n)
        .map(|i| {
            let mut s = Seed::new(&format!("user{i:05}"));
            s.attributes.push(("name".into(), format!("Zoë Ñandú {i}")));
            if i % 3 == 0 {
                s.attributes
                    .push(("phone_number".into(), format!("+1555{i:07}")));
            }
            if i % 4 == 0 {
                s.attributes
                    .push(("custom:tenant".into(), format!("t{}", i % 5)));
            }
            s.attributes.push(("email_verified".into(), "true".into()));
            s.confirmed = i % 2 == 0;
            s.disabled = i % 7 == 3;
            if i % 5 == 0 {
                s.groups.push("admins".into());
            }
            if i % 6 == 0 {
                s.groups.push("editors".into());
            }
            s
        })
        .collect()
}

pub async fn create_groups(c: &Client, pool: &str) {
    c.create_group()
        .user_pool_id(pool)
        .group_name("admins")
        .description("Administrators")
        .precedence(1)
        .role_arn("arn:aws:iam::123456789012:role/admins")
        .send()
        .await
        .expect("create group");
    c.create_group()
        .user_pool_id(pool)
        .group_name("editors")
        .send()
        .await
        .expect("create group");
}

/// A new pool (with `custom:tenant`), its two groups and `n` varied users.
pub async fn seeded_pool(name: &str, n: usize) -> (Client, String) {
    let c = client(moto()).await;
    let pool = create_pool(&c, &unique(name), tenant_pool()).await;
    create_groups(&c, &pool).await;
    seed(&c, &pool, &varied_users(n)).await;
    (c, pool)
}

/// Creates the users directly in moto, several at a time, and any group they name that the
/// pool lacks.
pub async fn seed(c: &Client, pool: &str, users: &[Seed]) {
    use futures::StreamExt;
    let groups: std::collections::BTreeSet<&String> =
        users.iter().flat_map(|s| s.groups.iter()).collect();
    for g in groups {
        let exists = c
            .get_group()
            .user_pool_id(pool)
            .group_name(g)
            .send()
            .await
            .is_ok();
        if !exists {
            c.create_group()
                .user_pool_id(pool)
                .group_name(g)
                .send()
                .await
                .expect("create group");
        }
    }
    futures::stream::iter(users.iter().cloned())
        .for_each_concurrent(8, |s| async move {
            let attrs = s
                .attributes
                .iter()
                .map(|(n, v)| AttributeType::builder().name(n).value(v).build().unwrap());
            c.admin_create_user()
                .user_pool_id(pool)
                .username(&s.username)
                .set_user_attributes(Some(attrs.collect()))
                .message_action(MessageActionType::Suppress)
                .send()
                .await
                .expect("seed user");
            if s.confirmed {
                c.admin_set_user_password()
                    .user_pool_id(pool)
                    .username(&s.username)
                    .password("Secret-Passw0rd!")
                    .permanent(true)
                    .send()
                    .await
                    .expect("confirm user");
            }
            if s.disabled {
                c.admin_disable_user()
                    .user_pool_id(pool)
                    .username(&s.username)
                    .send()
                    .await
                    .expect("disable user");
            }
            for g in &s.groups {
                c.admin_add_user_to_group()
                    .user_pool_id(pool)
                    .username(&s.username)
                    .group_name(g)
                    .send()
                    .await
                    .expect("add to group");
            }
        })
        .await;
}

/// A user as the pool has it, for comparisons: attributes without `sub`, sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Snapshot {
    pub username: String,
    pub attributes: Vec<(String, String)>,
    pub enabled: bool,
    pub status: String,
    pub groups: Vec<String>,
}

/// Every user of the pool with its groups, sorted by username.
/// Every user of the pool, as ListUsers gives them.
pub async fn all_users(
    c: &Client,
    pool: &str,
) -> Vec<aws_sdk_cognitoidentityprovider::types::UserType> {
    let mut users = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = c
            .list_users()
            .user_pool_id(pool)
            .set_pagination_token(token.clone())
            .send()
            .await
            .expect("list users");
        users.extend(out.users().iter().cloned());
        token = out.pagination_token().map(str::to_string);
        if token.is_none() {
            return users;
        }
    }
}

pub async fn snapshot(c: &Client, pool: &str) -> Vec<Snapshot> {
    let mut users = Vec::new();
    for u in &all_users(c, pool).await {
        let username = u.username().unwrap().to_string();
        let groups = c
            .admin_list_groups_for_user()
            .user_pool_id(pool)
            .username(&username)
            .send()
            .await
            .expect("groups for user");
        let mut groups: Vec<String> = groups
            .groups()
            .iter()
            .map(|g| g.group_name().unwrap().to_string())
            .collect();
        groups.sort();
        let mut attributes: Vec<(String, String)> = u
            .attributes()
            .iter()
            .filter(|a| a.name() != "sub")
            .map(|a| (a.name().to_string(), a.value().unwrap_or("").to_string()))
            .collect();
        attributes.sort();
        users.push(Snapshot {
            username,
            attributes,
            enabled: u.enabled(),
            status: u.user_status().unwrap().as_str().to_string(),
            groups,
        });
    }
    users.sort();
    users
}

/// `cbr` with dummy credentials against `endpoint`, in `dir`, ready to run.
pub fn cbr_command(endpoint: &str, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cbr"));
    cmd.args(args)
        .args(["--endpoint-url", endpoint, "--region", REGION])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

/// One test's world (fd's `TestEnv`): a private directory `cbr` runs in, and the endpoint it
/// talks to (moto's server; see [`TestEnv::through`] for the AWS-like layer).
pub struct TestEnv {
    dir: tempfile::TempDir,
    endpoint: String,
}

impl TestEnv {
    /// A fresh directory, with `cbr` talking to moto directly.
    pub fn new() -> TestEnv {
        TestEnv::through(moto())
    }

    /// A fresh directory, with `cbr` talking to `endpoint` (a layer's URL).
    pub fn through(endpoint: &str) -> TestEnv {
        TestEnv {
            dir: tempfile::tempdir().expect("a temporary directory"),
            endpoint: endpoint.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `cbr ARGS` in the directory, ready to run.
    pub fn command(&self, args: &[&str]) -> Command {
        cbr_command(&self.endpoint, self.path(), args)
    }

    /// Runs `cbr ARGS` in the directory and waits for it.
    pub fn cbr(&self, args: &[&str]) -> Output {
        cbr(&self.endpoint, self.path(), args)
    }
}

/// Runs `cbr` with dummy credentials against `endpoint` and waits for it.
pub fn cbr(endpoint: &str, dir: &Path, args: &[&str]) -> Output {
    cbr_command(endpoint, dir, args).output().expect("run cbr")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "cbr failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Reads a backup data file as JSON.
pub fn read_backup(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str::<Option<Vec<Value>>>(&text)
        .unwrap()
        .unwrap_or_default()
}

/// Reads a JSON file (a manifest, a report).
pub fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Files in a directory, by name.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A unique pool name for this test.
pub fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Copies a fixture from tests/fixtures into `dir`.
pub fn fixture(name: &str, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dst = dir.join(Path::new(name).file_name().unwrap());
    std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copying {}: {e}", src.display()));
    dst
}

/// The `sub` of a record (or a members file's entry) read as JSON.
pub fn sub_of(record: &Value) -> String {
    record["Attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["Name"] == "sub")
        .and_then(|a| a["Value"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Records with their `Groups` sorted, the records sorted by username: to compare backups
/// whatever order their groups were written in.
pub fn normalized(mut records: Vec<Value>) -> Vec<Value> {
    for r in &mut records {
        if let Some(groups) = r.get_mut("Groups").and_then(Value::as_array_mut) {
            groups.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
    records.sort_by(|a, b| a["Username"].as_str().cmp(&b["Username"].as_str()));
    records
}

/// The records of the plain data files `files` (shards of one set, in `dir`), each with the
/// memberships the set's members files (`<stem>.members.json`, where there is one) hold for
/// it (same username and sub) added to its `Groups`; [`normalized`].
pub fn records_of_set(dir: &Path, files: &[&str]) -> Vec<Value> {
    let mut entries: Vec<Value> = Vec::new();
    let mut records: Vec<Value> = Vec::new();
    for file in files {
        records.extend(read_backup(&dir.join(file)));
        let stem = file.strip_suffix(".json").unwrap_or(file);
        let members = dir.join(format!("{stem}.members.json"));
        if members.exists() {
            entries.extend(read_backup(&members));
        }
    }
    let key = |r: &Value| {
        (
            r["Username"].as_str().unwrap_or_default().to_string(),
            sub_of(r),
        )
    };
    let at: std::collections::HashMap<(String, String), usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (key(r), i))
        .collect();
    for e in &entries {
        if let Some(&i) = at.get(&key(e)) {
            let groups = records[i]["Groups"]
                .as_array_mut()
                .expect("a record with Groups");
            for g in e["Groups"].as_array().unwrap() {
                if !groups.contains(g) {
                    groups.push(g.clone());
                }
            }
        }
    }
    normalized(records)
}

/// The UserList calls a layer has answered so far: (ListUsers, ListUsersInGroup).
pub fn user_list_calls(layer: &Server) -> (u64, u64) {
    let stats = layer_stats(layer);
    let calls = |op: &str| stats["ops"][op]["calls"].as_u64().unwrap_or(0);
    (calls("ListUsers"), calls("ListUsersInGroup"))
}

/// The writes a layer has passed on so far: every call that changes a pool.
pub fn layer_writes(layer: &Server) -> u64 {
    let stats = layer_stats(layer);
    stats["ops"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(op, _)| {
            !["List", "Describe", "Get", "AdminGet", "AdminList"]
                .iter()
                .any(|read| op.starts_with(read))
        })
        .map(|(_, v)| v["calls"].as_u64().unwrap())
        .sum()
}

/// Varied users (as [`varied_users`]) in more groups: `everyone` holds every user, two small
/// groups have non-Latin and emoji names, and `solo` holds one user. With 3 shards, shard 1
/// lists `editors`, `管理者` and `🚀-launch-team`, shard 2 `everyone` and `solo`, shard 3
/// `admins`.
pub fn users_in_many_groups(n: usize) -> Vec<Seed> {
    varied_users(n)
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            s.groups.push("everyone".into());
            if i % 9 == 2 {
                s.groups.push("管理者".into());
            }
            if i % 11 == 4 {
                s.groups.push("🚀-launch-team".into());
            }
            if i == 7 {
                s.groups.push("solo".into());
            }
            s
        })
        .collect()
}
