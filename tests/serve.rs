//! The drawing page's server (`examples/serve`) under load and abuse: a few hundred requests
//! from threads, well-formed and not, each answered (a 4xx with a message for the bad ones),
//! and the server still up at the end. Bounded in count and time; it binds 127.0.0.1 only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Threads sending requests, and requests each sends.
const THREADS: usize = 8;
const PER_THREAD: usize = 40;

mod common;
use common::example;

/// The server process, killed when dropped.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server on a free port of 127.0.0.1; returns it and its `host:port`.
fn start() -> (Served, String) {
    let mut child = Command::new(example("serve"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the serve example runs");
    let stdout = child.stdout.take().expect("piped");
    let served = Served(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the server prints its address");
    let address = line
        .trim()
        .strip_prefix("http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("an address, not {line:?}"))
        .to_owned();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    (served, address)
}

/// Sends `request` (raw bytes) and returns the status code and the body, or `None` when the
/// server closed the connection without an answer.
fn send(address: &str, request: &[u8]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).expect("the server accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // the server may answer (and close) before it has read a body it refuses
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_owned()))
}

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

#[test]
fn hundreds_of_requests_good_and_bad_are_all_answered() {
    let (_served, address) = start();
    let seven = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/digits/7.png"))
        .expect("tests/digits/7.png");
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (address, seven) = (&address, &seven);
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    let case = (thread + i) % 7;
                    let (request, wanted): (Vec<u8>, u16) = match case {
                        0 => (get("/"), 200),
                        1 => (post("/predict?model=modern", seven), 200),
                        2 => (post("/predict?model=report", seven), 200),
                        3 => (post("/predict", b"not a picture at all"), 422),
                        // a body that claims more than the cap, refused from its header
                        4 => (
                            b"POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 900000000\r\n\r\nxx"
                                .to_vec(),
                            413,
                        ),
                        5 => (post("/predict?model=nonsense", seven), 400),
                        _ => (get("/no/such/page"), 404),
                    };
                    let (status, body) = send(address, &request)
                        .unwrap_or_else(|| panic!("case {case}: no answer"));
                    assert_eq!(status, wanted, "case {case}: {body}");
                    if case == 1 || case == 2 {
                        assert!(body.contains("\"digit\":7"), "case {case}: {body:.200}");
                    } else if status != 200 {
                        assert!(body.contains("\"error\""), "case {case}: {body}");
                    }
                }
            });
        }
    });
    assert!(started.elapsed() < Duration::from_secs(120));
    // bytes that are not HTTP at all get no page, and the server stays up
    let garbage = send(&address, b"\x00\x01 this is not HTTP\r\n\r\n");
    assert!(
        garbage
            .as_ref()
            .is_none_or(|(status, _)| (400..500).contains(status)),
        "{garbage:?}"
    );
    let (status, page) = send(&address, &get("/")).expect("the server is still up");
    assert_eq!(status, 200);
    assert!(page.contains("<canvas id=\"pad\""));
}
