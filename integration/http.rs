//! `pxelab serve`'s HTTP server with real clients (curl, wget) and raw
//! sockets on loopback: bytes equal the ISO's, ranges and conditional
//! requests as RFC 9110 says, and hostile requests refused or bounded with
//! nothing leaked while it keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::served::Served;
use common::{fixture, reference_files};

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl").args(["-s", "--max-time", "60"]).args(args).output().unwrap()
}

/// This test process holds a thousand sockets and more: the hard limit.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

/// One raw request (or anything else) on a fresh connection; the whole answer.
fn raw(served: &Served, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(served.http).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

#[test]
fn curl_and_wget_get_the_isos_bytes() {
    let iso = fixture("centos-busybox.iso");
    let served = Served::start(&iso, "50401-50410", &[]);
    // Every file of the ISO's tree, under iso/ as in the boot tree.
    for (rel, path) in reference_files(&fixture("centos-busybox.files")) {
        let out = curl(&["--fail", &served.http_url(&format!("iso/{rel}"))]);
        assert!(out.status.success(), "{rel}");
        assert!(out.stdout == std::fs::read(&path).unwrap(), "{rel}: bytes differ");
    }
    // The boot tree's own files.
    let out = curl(&["--fail", &served.http_url("pxelinux.0")]);
    assert_eq!(out.stdout, std::fs::read("/usr/lib/PXELINUX/pxelinux.0").unwrap());
    assert!(String::from_utf8_lossy(&curl(&["--fail", &served.http_url("pxelinux.cfg/default")]).stdout).contains("inst.repo="));
    // The ISO itself, as casper's url= fetches it, with wget.
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("got.iso");
    let ok = Command::new("wget").args(["-q", "-O"]).arg(&got).arg(served.http_url("centos-busybox.iso")).status().unwrap();
    assert!(ok.success());
    assert!(std::fs::read(&got).unwrap() == std::fs::read(&iso).unwrap(), "the ISO over HTTP differs");
    // Its transfers are events, like TFTP's and FTP's.
    assert!(served.saw(|e| e["event"] == "transfer" && e["protocol"] == "http" && e["path"] == "/centos-busybox.iso" && e["complete"] == true));
}

#[test]
fn ranges_heads_and_conditional_requests() {
    let iso = fixture("centos-busybox.iso");
    let served = Served::start(&iso, "50411-50420", &[]);
    let url = served.http_url("centos-busybox.iso");
    let whole = std::fs::read(&iso).unwrap();
    let size = whole.len() as u64;
    for (range, from, to) in [("0-99", 0, 99), ("1000-", 1000, size - 1), ("-4096", size - 4096, size - 1), ("5-5000000000", 5, size - 1)] {
        let out = curl(&["-r", range, "-w", "%{http_code}", "-o", "-", &url]);
        let (body, code) = out.stdout.split_at(out.stdout.len() - 3);
        assert_eq!(code, b"206", "{range}");
        assert!(body == &whole[from as usize..=to as usize], "{range}: bytes differ");
    }
    // Past the end: 416 with the size.
    let answer = raw(&served, format!("GET /centos-busybox.iso HTTP/1.1\r\nHost: x\r\nRange: bytes={size}-\r\nConnection: close\r\n\r\n").as_bytes());
    assert!(status_line(&answer).contains("416"), "{answer}");
    assert!(answer.contains(&format!("content-range: bytes */{size}")), "{answer}");
    // HEAD: the length, no body.
    let answer = raw(&served, b"HEAD /centos-busybox.iso HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(status_line(&answer).contains("200") && answer.contains(&format!("content-length: {size}")), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "HEAD sent a body: {answer:?}");
    // Last-Modified, then If-Modified-Since: 304.
    let last_modified = answer.lines().find_map(|l| l.strip_prefix("last-modified: ")).expect("Last-Modified").to_string();
    let answer = raw(&served, format!("GET /pxelinux.0 HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {last_modified}\r\nConnection: close\r\n\r\n").as_bytes());
    assert!(status_line(&answer).contains("304"), "{answer}");
    // Keep-alive: two requests on one connection.
    let mut stream = TcpStream::connect(served.http).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"HEAD /pxelinux.0 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /boot.msg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut both = String::new();
    let _ = stream.read_to_string(&mut both);
    assert_eq!(both.matches("HTTP/1.1 200").count(), 2, "{both}");
}

#[test]
fn ranges_past_4_gib_read_the_right_bytes() {
    let served = Served::start(&fixture("big.iso"), "50421-50430", &["--kernel", "before.bin", "--initrd", "zafter.bin"]);
    let reference = std::fs::File::open(fixture("big.files/huge.img")).unwrap();
    let size = reference.metadata().unwrap().len();
    assert!(size > 4 << 30);
    for from in [(4u64 << 30) - 100, size - 70_000] {
        let to = (from + 65_535).min(size - 1);
        let out = curl(&["--fail", "-r", &format!("{from}-{to}"), &served.http_url("iso/huge.img")]);
        let mut want = vec![0; (to - from + 1) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&reference, &mut want, from).unwrap();
        assert!(out.stdout == want, "bytes {from}-{to} differ");
    }
    let head = raw(&served, b"HEAD /iso/huge.img HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(head.contains(&format!("content-length: {size}")), "{head}");
}

/// Every spelling of a way out of the tree, absurd requests, and writes.
#[test]
fn hostile_requests_are_refused_and_nothing_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("lab.iso");
    std::fs::copy(fixture("centos-busybox.iso"), &iso).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "PXELAB-HTTP-SECRET").unwrap();
    let served = Served::start(&iso, "50431-50440", &[]);
    let traversals = [
        "/../secret.txt",
        "/../../../../etc/passwd",
        "/iso/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/iso/..%2f..%2fsecret.txt",
        "/iso/%2e%2e/%2e%2e/etc/passwd",
        "/..%5csecret.txt",
        "/iso%5c..%5c..%5csecret.txt",
        "/pxelinux.0%00.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/%252e%252e/secret.txt",
        "/%zz",
        "/lab.iso/../secret.txt",
    ];
    for path in traversals {
        let answer = raw(&served, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        let code = status_line(&answer);
        assert!(code.contains("400") || code.contains("403") || code.contains("404"), "{path}: {code}");
        assert!(!answer.contains("PXELAB-HTTP-SECRET") && !answer.contains("root:x:0:0"), "{path} leaked: {answer}");
    }
    // Absolute-form and other request targets.
    for request in [
        "GET http://127.0.0.1/../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "PUT /pxelinux.0 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        "DELETE /iso/.treeinfo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw(&served, request.as_bytes());
        assert!(!answer.contains("PXELAB-HTTP-SECRET") && !status_line(&answer).contains(" 2"), "{request:?}: {answer}");
    }
    // A 100 KB request line and 100 KB of headers: refused or cut, quickly.
    let long_path = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000));
    let long_header = format!("GET /pxelinux.0 HTTP/1.1\r\nHost: x\r\nX-Junk: {}\r\n\r\n", "b".repeat(100_000));
    for request in [long_path, long_header] {
        let started = Instant::now();
        let answer = raw(&served, request.as_bytes());
        assert!(!status_line(&answer).contains(" 2"), "{}", status_line(&answer));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // After all of it, a normal download is still byte-identical.
    let out = curl(&["--fail", &served.http_url("iso/images/install.img")]);
    assert!(out.stdout == std::fs::read(fixture("centos-busybox.files/images/install.img")).unwrap());
    assert!(served.child_alive());
}

#[test]
fn slow_and_idle_connections_are_closed() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50441-50450", &["--http-header-timeout", "2"]);
    // Slowloris: a head that never ends.
    let mut slow = TcpStream::connect(served.http).unwrap();
    slow.write_all(b"GET /pxelinux.0 HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 1024];
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(15) {
        let _ = slow.write_all(b"X-Drip: 1\r\n");
        match slow.read(&mut buf) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "a dripping request head kept its connection");
    assert!(started.elapsed() < Duration::from_secs(8), "closed only after {:?}", started.elapsed());
    // Idle keep-alive: closed after the same time.
    let mut idle = TcpStream::connect(served.http).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    assert_eq!(idle.read(&mut buf).unwrap_or(0), 0);
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// 1000 connections at once from loopback: the server bounds them (503 past
/// its limit of 256), stays small, and still serves afterwards. The memory
/// bound is the design's: each of the 256 admitted connections holds at most
/// two 256 KiB read chunks of its body (512 KiB), 128 MiB in all.
#[test]
fn a_thousand_connections_are_bounded() {
    raise_open_file_limit();
    let served = Served::start(&fixture("centos-busybox.iso"), "50451-50460", &[]);
    let rss_before = common::proc_status_kib(served.child.id(), "VmRSS");
    let mut conns: Vec<TcpStream> = (0..1000).map(|_| TcpStream::connect(served.http).unwrap()).collect();
    // Each asks for the ISO and reads nothing: the server must not buffer for them.
    for c in &mut conns {
        let _ = c.write_all(b"GET /centos-busybox.iso HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    // Every connection is answered: a 200 head (then a body it never
    // reads) for the admitted ones, a 503 for the rest.
    let (mut busy, mut admitted) = (0, 0);
    let until = Instant::now() + Duration::from_secs(30);
    for c in &mut conns {
        c.set_read_timeout(Some(until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)))).unwrap();
        let mut head = [0u8; 12];
        c.read_exact(&mut head).expect("every connection is answered within 30 s");
        match &head[9..12] {
            b"503" => busy += 1,
            b"200" => admitted += 1,
            other => panic!("answered {}", String::from_utf8_lossy(other)),
        }
    }
    let rss = common::proc_status_kib(served.child.id(), "VmRSS");
    assert_eq!((admitted, busy), (256, 1000 - 256), "256 admitted, the rest refused");
    assert!(rss < rss_before + 128 * 1024, "RSS grew from {rss_before} to {rss} KiB, past the 128 MiB the design allows");
    drop(conns);
    let want = std::fs::read("/usr/lib/PXELINUX/pxelinux.0").unwrap();
    common::net::wait_for("serving again after the flood", Duration::from_secs(10), || curl(&["--fail", &served.http_url("pxelinux.0")]).stdout == want);
}

#[test]
fn allow_applies_to_http_and_http_can_be_off() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50461-50470", &["--allow", "192.0.2.0/24"]);
    let out = curl(&[&served.http_url("pxelinux.0")]);
    assert!(out.stdout.is_empty(), "a client outside --allow got an answer");
    assert!(served.saw(|e| e["event"] == "refused" && e["protocol"] == "http"));
    let out = common::pxelab()
        .args(["--json", "serve", "--bind", "127.0.0.1", "--tftp-port", "0", "--ftp-port", "0", "--http-port", "none", "--iso"])
        .arg(fixture("centos-busybox.iso"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = out;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(ready["http"].is_null(), "{ready}");
}

/// Idle connections cost no one else anything: with 1100 sockets held open
/// that never send a byte (more than the 1024 the server keeps), a real
/// request is still answered within a second, because a full table closes
/// its oldest idle connection to make room.
#[test]
fn idle_connections_held_open_delay_no_one() {
    raise_open_file_limit();
    let served = Served::start(&fixture("centos-busybox.iso"), "50471-50480", &[]);
    let want = std::fs::read("/usr/lib/PXELINUX/pxelinux.0").unwrap();
    let idle: Vec<TcpStream> = (0..1100).map(|_| TcpStream::connect(served.http).unwrap()).collect();
    for round in 0..3 {
        let started = Instant::now();
        let out = curl(&["--fail", "--max-time", "5", &served.http_url("pxelinux.0")]);
        assert!(out.status.success() && out.stdout == want, "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(started.elapsed() < Duration::from_secs(1), "round {round}: answered after {:?}", started.elapsed());
    }
    // The oldest idle ones made room: the first socket was closed by the server.
    let mut first = &idle[0];
    first.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(first.read(&mut byte), Ok(0) | Err(_)), "the oldest idle connection is still open");
    assert!(served.child_alive());
}
