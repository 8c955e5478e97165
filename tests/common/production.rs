//! Pools as they are in production: every status at once (UNCONFIRMED, COMPROMISED,
//! EXTERNAL_PROVIDER, linked identities ... which moto's admin API cannot make), disabled
//! users, 30 groups, names in many scripts and emoji, values at the schema's limits, in one
//! of six pool shapes. moto_server.py writes them straight into moto's backend on
//! `POST /_test/production-pool`; tests/support/production_pool.py says what the users are
//! made of and tests/support/test_production_pool.py checks it.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;

/// The pool shapes (`production_pool.SHAPES`): `username` (case-sensitive usernames),
/// `case_insensitive`, `email_sign_in` and `phone_sign_in` (UsernameAttributes, generated
/// usernames), `email_alias` (case-sensitive), `preferred_username_alias`. Each has the
/// custom attributes `custom:tier` (String, 0..256), `custom:score` (Number, 0..1000000),
/// `custom:beta` (Boolean), `custom:joined` (DateTime) and `custom:code` (immutable String,
/// up to 64).
pub const SHAPES: [&str; 6] = [
    "username",
    "case_insensitive",
    "email_sign_in",
    "phone_sign_in",
    "email_alias",
    "preferred_username_alias",
];

/// Creates a pool of `shape` in the moto at `moto_url` (the one [`super::moto`] started: only
/// moto_server.py serves the endpoint) with `count` production-like users made from `seed`
/// (0: an empty pool of that shape, without groups, e.g. a restore target). Returns the
/// pool's id and its users as ListUsers lists them, each with its `Groups` (names): the
/// records a backup of the pool holds, but for dates (epoch seconds here).
pub fn production_pool(
    moto_url: &str,
    shape: &str,
    count: usize,
    seed: u64,
) -> (String, Vec<Value>) {
    let request = serde_json::json!({
        "shape": shape,
        "count": count,
        "seed": seed,
        "name": super::unique(&format!("production-{shape}")),
        "region": super::REGION,
    })
    .to_string();
    let addr = moto_url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("cannot connect to moto at {addr}: {e}"));
    write!(
        stream,
        "POST /_test/production-pool HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{request}",
        request.len()
    )
    .expect("send the production-pool request");
    stream.flush().expect("send the production-pool request");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .expect("read the production-pool answer");
    let (status, body) = http_body(&raw);
    assert!(
        status == 200,
        "POST /_test/production-pool ({shape}, {count} users, seed {seed}) answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let mut answer: Value = serde_json::from_slice(&body).expect("production-pool answer JSON");
    let pool_id = answer["pool_id"]
        .as_str()
        .expect("pool_id in the production-pool answer")
        .to_string();
    let users = match answer["users"].take() {
        Value::Array(users) => users,
        other => panic!("users in the production-pool answer is not a list: {other}"),
    };
    (pool_id, users)
}

/// The status code and body of a whole HTTP/1.1 response, whether its body is sent with a
/// Content-Length, chunked, or until the connection closes.
fn http_body(raw: &[u8]) -> (u16, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]);
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut chunked = false;
    let mut length: Option<usize> = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok();
        }
    }
    let body = if chunked {
        dechunk(rest)
    } else if let Some(n) = length {
        assert!(
            rest.len() >= n,
            "the answer was cut short: {} of {n} bytes",
            rest.len()
        );
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    (status, body)
}

/// The body of a chunked transfer encoding (chunk extensions and trailers ignored).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let line = String::from_utf8_lossy(&data[..line_end]);
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        data = &data[line_end + 2..];
        if size == 0 {
            return body;
        }
        assert!(data.len() >= size + 2, "a chunk was cut short");
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
