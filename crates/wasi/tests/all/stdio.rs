//! Standard streams, arguments, environment, exit status, clocks,
//! randomness and `poll_oneoff`, through in-memory pipes.

use crate::{run, scratch};
use kiln_wasi::{DirPerms, FilePerms, MonotonicClock, RandomSource, WallClock};
use std::time::Duration;

#[test]
fn stdin_to_stdout_and_stderr() {
    let input: Vec<u8> = b"hello, pipes\n".repeat(10_000);
    let o = run("stdio", &[], &input, |_| {});
    assert_eq!(o.status, Some(0), "{o:?}");
    assert_eq!(o.stdout.as_bytes(), input.to_ascii_uppercase());
    assert_eq!(o.stderr, format!("read {} bytes\n", input.len()));
    let o = run("stdio", &[], b"", |_| {});
    assert_eq!((o.status, o.stdout.as_str()), (Some(3), ""));
}

#[test]
fn output_beyond_a_pipes_capacity_fails_instead_of_growing() {
    let out = kiln_wasi::pipe::MemoryOutputPipe::new(100);
    let o = run("stdio", &[], &[b'a'; 10_000], |b| {
        b.stdout(out.clone());
    });
    // The guest's stdio reports the failed writes; nothing past the
    // capacity was stored.
    assert_eq!(o.status, Some(0), "{o:?}");
    assert!(out.contents().len() <= 100);
}

#[test]
fn args_and_env() {
    let o = run("args_env", &["one", "two words", "--flag"], b"", |b| {
        b.env("A", "1").env("B", "x=y").env("A", "2");
    });
    assert_eq!(o.status, Some(4));
    assert_eq!(
        o.stdout,
        "arg=args_env\narg=one\narg=two words\narg=--flag\nenv=B=x=y\nenv=A=2\n"
    );
    // Nothing is inherited unless asked for.
    let o = run("args_env", &[], b"", |_| {});
    assert_eq!(o.stdout, "arg=args_env\n");
    let o = run("args_env", &[], b"", |b| {
        b.inherit_env();
    });
    let path = std::env::var("PATH").unwrap();
    assert!(
        o.stdout.contains(&format!("env=PATH={path}\n")),
        "{}",
        o.stdout
    );
}

#[test]
fn exit_status_and_unflushed_output() {
    for code in [0, 1, 7, 42, 255] {
        let o = run("exit", &[&code.to_string()], b"", |_| {});
        assert_eq!(o.status, Some(code));
        assert_eq!(o.stdout, "bye", "exit() flushes stdio");
    }
    let o = run("exit", &["abort"], b"", |_| {});
    assert_eq!(o.status, None);
    assert!(o.error.unwrap().contains("unreachable"));
    assert_eq!(o.stdout, "bye");
}

struct FakeWall;
impl WallClock for FakeWall {
    fn now(&self) -> Duration {
        Duration::new(1_700_000_000, 123_456_789)
    }
    fn resolution(&self) -> Duration {
        Duration::from_micros(1)
    }
}
struct FakeMono(std::sync::atomic::AtomicU64);
impl MonotonicClock for FakeMono {
    fn now(&self) -> u64 {
        // Each reading moves 5 ms on.
        self.0
            .fetch_add(5_000_000, std::sync::atomic::Ordering::Relaxed)
    }
    fn resolution(&self) -> u64 {
        1000
    }
}
struct Counter(u8);
impl RandomSource for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
    }
}

fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

#[test]
fn clocks_and_random_are_the_hosts_or_overridden() {
    let o = run("clocks", &[], b"", |_| {});
    assert_eq!(o.status, Some(0), "{o:?}");
    let wall: f64 = field(&o.stdout, "realtime").parse().unwrap();
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((host - wall).abs() < 60.0, "{wall} vs {host}");
    assert_eq!(field(&o.stdout, "cputime_advances"), "1");
    let slept: u64 = field(&o.stdout, "slept_ms").parse().unwrap();
    assert!(slept >= 20, "nanosleep(20ms) took {slept} ms");
    assert_ne!(
        field(&o.stdout, "random"),
        "000102030405060708090a0b0c0d0e0f"
    );

    let o = run("clocks", &[], b"", |b| {
        b.wall_clock(FakeWall)
            .monotonic_clock(FakeMono(0.into()))
            .secure_random(Counter(0));
    });
    assert_eq!(field(&o.stdout, "realtime"), "1700000000.123456789");
    assert_eq!(field(&o.stdout, "realtime_res"), "1000");
    assert_eq!(field(&o.stdout, "monotonic"), "0.000000000");
    assert_eq!(field(&o.stdout, "monotonic_res"), "1000");
    assert_eq!(
        field(&o.stdout, "random"),
        "000102030405060708090a0b0c0d0e0f"
    );
}

#[test]
fn poll_oneoff_on_stdin_and_clocks() {
    // Input waiting: stdin is ready at once, however long the timeout.
    let t = std::time::Instant::now();
    let o = run("poll", &["5000"], b"abc", |_| {});
    assert!(t.elapsed() < Duration::from_secs(4));
    assert!(o.stdout.starts_with("ready read=abc\n"), "{}", o.stdout);
    assert!(o
        .stdout
        .contains("clock errno=0 nevents=1 userdata=42 type=0\n"));
    // No subscriptions is EINVAL.
    assert!(o.stdout.contains("empty errno=28\n"), "{}", o.stdout);
    // At end of input stdin reports ready (a read returns 0), like a
    // closed pipe.
    let o = run("poll", &["5000"], b"", |_| {});
    assert!(o.stdout.starts_with("ready read=\n"), "{}", o.stdout);
}

#[test]
fn a_preopen_is_listed_and_named() {
    let dir = scratch("preopen-name");
    std::fs::write(dir.join("f"), "x").unwrap();
    let o = run("readdir", &[], b"", |b| {
        b.preopened_dir(&dir, "/many", DirPerms::all(), FilePerms::all())
            .unwrap();
    });
    assert_eq!(o.stdout, "count=1 sum=0\n");
}

#[test]
fn a_preopened_socket_accepts_receives_sends_and_shuts_down() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"ping").unwrap();
        let mut reply = String::new();
        // The guest shuts its write side down, so this ends.
        s.read_to_string(&mut reply).unwrap();
        reply
    });
    let o = run("sock", &[], b"", |b| {
        b.preopened_socket(listener);
    });
    assert_eq!(o.status, Some(0), "{o:?}");
    assert_eq!(client.join().unwrap(), "PONG:ping");
    for line in [
        "accept=0",
        "recv_peek=0",
        "recv=0",
        "got=ping",
        "send=0",
        "shutdown_wr=0",
        "shutdown_bad_how=28",
        "accept_on_connection=28",
        "recv_on_listener=53",
        "send_on_stdout=57",
        "accept_on_stdin=57",
        "close=0",
    ] {
        assert!(o.stdout.lines().any(|l| l == line), "{line}\n{}", o.stdout);
    }
}
