//! Load on loopback: 200 concurrent TFTP transfers and 50 FTP sessions at
//! once, every file byte-identical, p50/p99 transfer times and the
//! server's peak RSS reported (`--nocapture`); then the limits, lowered,
//! refuse the excess politely while the admitted transfers complete.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::fixture;
use common::served::Served;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs curl for `url` into `out`; returns whether it succeeded and how long it took.
fn timed_curl(url: String, extra: &'static [&'static str], out: std::path::PathBuf) -> std::thread::JoinHandle<(bool, Duration, std::path::PathBuf)> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let ok = Command::new("curl").args(["-s", "--max-time", "120"]).args(extra).arg("-o").arg(&out).arg(&url).status().unwrap().success();
        (ok, started.elapsed(), out)
    })
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    println!(
        "{what}: {} transfers, p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        times.len(),
        percentile(times, 0.5).as_secs_f64(),
        percentile(times, 0.99).as_secs_f64(),
        times.last().unwrap().as_secs_f64()
    );
}

#[test]
fn two_hundred_tftp_and_fifty_ftp_at_once_are_all_byte_identical() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50401-50500", &[]);
    let dir = tempfile::tempdir().unwrap();
    let initrd = std::fs::read(fixture("centos-busybox.files/isolinux/initrd.img")).unwrap();
    let kernel = std::fs::read(fixture("centos-busybox.files/isolinux/vmlinuz")).unwrap();
    let started = Instant::now();
    let tftp: Vec<_> =
        (0..200).map(|i| timed_curl(served.tftp_url("iso/isolinux/initrd.img"), &["--tftp-blksize", "1468"], dir.path().join(format!("t{i}")))).collect();
    let ftp: Vec<_> = (0..50).map(|i| timed_curl(served.ftp_url("isolinux/vmlinuz"), &[], dir.path().join(format!("f{i}")))).collect();

    let check = |handles: Vec<std::thread::JoinHandle<(bool, Duration, std::path::PathBuf)>>, expected: &[u8], what: &str| {
        let mut times = Vec::new();
        for handle in handles {
            let (ok, took, out) = handle.join().unwrap();
            assert!(ok, "{what}: a transfer failed");
            assert!(std::fs::read(&out).unwrap() == expected, "{what}: {} differs", out.display());
            times.push(took);
        }
        times
    };
    let mut tftp_times = check(tftp, &initrd, "TFTP");
    let mut ftp_times = check(ftp, &kernel, "FTP");
    let wall = started.elapsed();
    report("TFTP initrd.img (1.1 MB, blksize 1468)", &mut tftp_times);
    report("FTP vmlinuz (8.2 MB)", &mut ftp_times);
    let rss = common::proc_status_kib(served.child.id(), "VmHWM") as f64 / 1024.0;
    println!(
        "all {} byte-identical in {:.1} s wall, {:.0} MB served; server peak RSS {rss:.1} MiB",
        tftp_times.len() + ftp_times.len(),
        wall.as_secs_f64(),
        (200 * initrd.len() + 50 * kernel.len()) as f64 / 1e6
    );
    assert!(wall < Duration::from_secs(150), "load took {wall:?}");
    assert!(rss < 128.0, "peak RSS {rss:.1} MiB under load");
}

/// Opens a TFTP transfer and leaves it hanging; returns the first reply's opcode and text.
fn open_transfer(server: SocketAddr) -> (UdpSocket, u16, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    socket.send_to(b"\0\x01iso/isolinux/vmlinuz\0octet\0", server).unwrap();
    let mut buf = [0u8; 600];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    let opcode = u16::from_be_bytes([buf[0], buf[1]]);
    let text = String::from_utf8_lossy(&buf[4..n]).trim_end_matches('\0').to_string();
    (socket, opcode, text)
}

#[test]
fn limits_refuse_the_excess_politely_and_serve_the_rest() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50501-50520", &["--max-transfers", "20", "--max-sessions", "10"]);
    // 30 TFTP transfers held open: 20 admitted (DATA), 10 refused with an error saying why.
    let held: Vec<_> = (0..30).map(|_| open_transfer(served.tftp)).collect();
    let admitted = held.iter().filter(|(_, op, _)| *op == 3).count();
    let refused: Vec<&String> = held.iter().filter(|(_, op, _)| *op == 5).map(|(_, _, t)| t).collect();
    assert_eq!((admitted, refused.len()), (20, 10), "{refused:?}");
    assert!(refused.iter().all(|t| t.contains("server busy")), "{refused:?}");
    assert!(served.saw(|e| e["event"] == "refused" && e["reason"] == "too many transfers"));

    // 15 FTP sessions held open: 10 greeted, 5 told 421.
    let mut greetings = Vec::new();
    let mut sessions = Vec::new();
    for _ in 0..15 {
        let stream = std::net::TcpStream::connect(served.ftp).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stream.try_clone().unwrap()), &mut line).unwrap();
        greetings.push(line.trim_end().to_string());
        sessions.push(stream);
    }
    assert_eq!(greetings.iter().filter(|g| g.starts_with("220")).count(), 10, "{greetings:?}");
    assert_eq!(greetings.iter().filter(|g| g.starts_with("421")).count(), 5, "{greetings:?}");

    // Freed slots are reusable: once the held ones go, downloads work again.
    drop(sessions);
    drop(held);
    let readme = std::fs::read(fixture("centos-busybox.files/README")).unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    // Abandoned TFTP transfers hold their slot until their retries time out.
    loop {
        let ok = Command::new("curl").args(["-s", "-o"]).arg(out.path()).arg(served.tftp_url("iso/README")).status().unwrap().success();
        if ok && std::fs::read(out.path()).unwrap() == readme {
            break;
        }
        assert!(Instant::now() < until, "TFTP slots were never freed");
        std::thread::sleep(Duration::from_secs(1));
    }
    let ok = Command::new("curl").args(["-s", "-o"]).arg(out.path()).arg(served.ftp_url("README")).status().unwrap().success();
    assert!(ok && std::fs::read(Path::new(out.path())).unwrap() == readme, "FTP after the sessions closed");
}
