//! `pxelab serve` against real clients on loopback: curl (tftp:// and
//! ftp://), atftp, lftp, and a raw TFTP client for what real clients would
//! never send. Every byte served is compared with the files xorriso
//! extracts from the same ISO.

mod common;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::served::{ftp_session, request, tftp_raw, Served, ACCESS_VIOLATION, TFTP_DATA, TFTP_ERROR};
use common::{fixture, pxelab, reference_files};

fn reference(name: &str) -> HashMap<String, Vec<u8>> {
    reference_files(&fixture(&format!("{name}.files"))).into_iter().map(|(rel, abs)| (rel, std::fs::read(abs).unwrap())).collect()
}

/// Runs a client; returns its exit status and what it wrote to `out`.
fn fetch(cmd: &mut Command, out: &Path) -> (bool, Vec<u8>) {
    let _ = std::fs::remove_file(out);
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    (status.success(), std::fs::read(out).unwrap_or_default())
}

fn curl(args: &[&str], out: &Path) -> (bool, Vec<u8>) {
    fetch(Command::new("curl").args(["-s", "--max-time", "60", "-o"]).arg(out).args(args), out)
}

#[test]
fn tftp_serves_every_file_byte_identical_at_each_block_size() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50000-50010", &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for (rel, bytes) in reference("centos-busybox") {
        for blksize in ["512", "1468", "8192"] {
            // The 40 MiB stage2 at 512 crosses the 65535-block rollover; one size is enough for it.
            if rel == "images/install.img" && blksize != "512" {
                continue;
            }
            let (ok, got) = curl(&["--tftp-blksize", blksize, &served.tftp_url(&format!("iso/{rel}"))], &out);
            assert!(ok, "curl failed for iso/{rel} at blksize {blksize}");
            assert!(got == bytes, "iso/{rel} at blksize {blksize}: {} bytes, want {}", got.len(), bytes.len());
        }
    }
    // Both spellings pxelinux and iPXE use.
    let pxelinux = std::fs::read("/usr/lib/PXELINUX/pxelinux.0").unwrap();
    assert_eq!(curl(&[&served.tftp_url("pxelinux.0")], &out).1, pxelinux);
    assert_eq!(curl(&[&served.tftp_url("/pxelinux.0")], &out).1, pxelinux);
    let menu = String::from_utf8(curl(&[&served.tftp_url("pxelinux.cfg/default")], &out).1).unwrap();
    // The installer is pointed at this server's HTTP (port included: not 80).
    assert!(menu.contains(&format!("inst.repo=http://{}/iso/", served.http)), "{menu}");
    assert!(served.saw(|e| e["event"] == "transfer" && e["path"] == "iso/images/install.img" && e["complete"] == true));
}

#[test]
fn atftp_with_a_window_gets_identical_bytes() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50011-50020", &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stage2");
    let want = std::fs::read(fixture("centos-busybox.files/images/install.img")).unwrap();
    let port = served.tftp.port().to_string();
    for opts in [&["--option", "windowsize 8", "--option", "blksize 1468"][..], &["--option", "blksize 512"]] {
        let (ok, got) = fetch(Command::new("atftp").args(opts).args(["-g", "-r", "iso/images/install.img", "-l"]).arg(&out).args(["127.0.0.1", &port]), &out);
        assert!(ok && got == want, "atftp {opts:?}: {} bytes", got.len());
    }
}

#[test]
fn lftp_mirrors_the_whole_iso_byte_identical() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50021-50040", &[]);
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    let status = Command::new("lftp")
        .args(["-e", &format!("set net:max-retries 1; set net:timeout 10; mirror / {}; quit", mirror.display())])
        .arg(format!("ftp://{}", served.ftp))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let got: HashMap<String, Vec<u8>> = reference_files(&mirror).into_iter().map(|(rel, abs)| (rel, std::fs::read(abs).unwrap())).collect();
    let want = reference("centos-busybox");
    let mut got_names: Vec<_> = got.keys().collect();
    let mut want_names: Vec<_> = want.keys().collect();
    got_names.sort();
    want_names.sort();
    assert_eq!(got_names, want_names);
    for (name, bytes) in &want {
        assert!(&got[name] == bytes, "{name} differs");
    }
}

#[test]
fn ftp_answers_size_mdtm_and_resumes_with_rest() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50041-50050", &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("part");
    let want = std::fs::read(fixture("centos-busybox.files/images/install.img")).unwrap();
    // curl -r sends REST before RETR.
    let (ok, got) = curl(&["-r", "1000000-", &served.ftp_url("images/install.img")], &out);
    assert!(ok && got == want[1_000_000..], "resumed download: {} bytes", got.len());
    let head = Command::new("curl").args(["-s", "-I", &served.ftp_url("images/install.img")]).output().unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    assert!(head.contains(&format!("Content-Length: {}", want.len())), "SIZE: {head}");
    assert!(head.contains("Last-Modified:"), "MDTM: {head}");
    let list = Command::new("curl").args(["-s", &served.ftp_url("images/")]).output().unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.contains("install.img") && list.contains("pxeboot"), "{list}");
}

#[test]
fn tftp_refuses_escapes_and_writes_and_keeps_serving() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50051-50060", &[]);
    for name in
        [&b"../etc/passwd"[..], b"/../etc/passwd", b"iso/../../etc/passwd", b"iso/images/../../../../etc/passwd", b"..\\..\\etc\\passwd", b"pxelinux.0\x01"]
    {
        let reply = tftp_raw(served.tftp, &request(1, name, &[]));
        assert_eq!(reply.as_ref().map(|r| (r.0, r.1)), Some((TFTP_ERROR, ACCESS_VIOLATION)), "{:?}", String::from_utf8_lossy(name));
    }
    for name in [&b"/etc/passwd"[..], b"etc/shadow", b"iso"] {
        let reply = tftp_raw(served.tftp, &request(1, name, &[])).unwrap();
        assert_eq!(reply.0, TFTP_ERROR, "{:?} was served", String::from_utf8_lossy(name));
    }
    // Writes are refused, whatever the path.
    let reply = tftp_raw(served.tftp, &request(2, b"pxelinux.0", &[])).unwrap();
    assert_eq!((reply.0, reply.1), (TFTP_ERROR, ACCESS_VIOLATION), "WRQ");
    // Garbage and truncated packets get no answer and do no harm.
    for junk in [&b"\0"[..], b"\0\x01", b"\0\x01pxelinux.0", b"\xff\xff\xff\xff", &[0u8; 1500][..]] {
        if let Some(reply) = tftp_raw(served.tftp, junk) {
            assert_ne!(reply.0, TFTP_DATA, "junk {junk:?} started a transfer");
        }
    }
    // Absurd options: the transfer still starts (options clamped or ignored), or is refused cleanly.
    for opts in [[("blksize", "0")], [("blksize", "7")], [("blksize", "99999999")], [("windowsize", "0")], [("timeout", "0")]] {
        if let Some((opcode, _, _)) = tftp_raw(served.tftp, &request(1, b"boot.msg", &opts)) {
            assert!([TFTP_DATA, TFTP_ERROR, 6].contains(&opcode), "{opts:?}: opcode {opcode}");
        }
    }
    // Still serving, correctly.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p");
    assert_eq!(curl(&[&served.tftp_url("pxelinux.0")], &out).1, std::fs::read("/usr/lib/PXELINUX/pxelinux.0").unwrap());
    assert!(served.saw(|e| e["event"] == "refused" && e["reason"] == "read-only server (WRQ)"));
}

#[test]
fn ftp_refuses_every_write_and_keeps_serving() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50061-50070", &[]);
    let replies = ftp_session(served.ftp, &["USER anonymous", "PASS x@", "DELE README", "MKD newdir", "RMD images", "RNFR README", "RNTO stolen"]);
    assert!(replies[0].starts_with("220"), "{replies:?}");
    assert!(replies[2].starts_with("230"), "login: {replies:?}");
    for (i, what) in [(3, "DELE"), (4, "MKD"), (5, "RMD")] {
        assert!(replies[i].starts_with("550"), "{what}: {}", replies[i]);
    }
    // RNFR may be accepted (350) as a no-op, but the rename itself must fail.
    assert!(replies[7].starts_with("550") || replies[7].starts_with("503"), "RNTO: {}", replies[7]);
    // STOR through a real client.
    let dir = tempfile::tempdir().unwrap();
    let upload = dir.path().join("up.txt");
    std::fs::write(&upload, b"hello").unwrap();
    let status = Command::new("curl").args(["-s", "-T"]).arg(&upload).arg(served.ftp_url("up.txt")).status().unwrap();
    assert!(!status.success(), "an upload succeeded");
    // Nothing changed, and downloads still work.
    let out = dir.path().join("readme");
    let (ok, got) = curl(&[&served.ftp_url("README")], &out);
    assert!(ok && got == std::fs::read(fixture("centos-busybox.files/README")).unwrap());
    // `..` cannot climb above the ISO's root.
    let (ok, got) = curl(&["--path-as-is", &served.ftp_url("../../../../etc/passwd")], &out);
    assert!(!ok || !String::from_utf8_lossy(&got).contains("root:"), "served the host's /etc/passwd");
}

#[test]
fn many_concurrent_downloads_are_all_byte_identical() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50071-50100", &[]);
    let dir = tempfile::tempdir().unwrap();
    let initrd = std::fs::read(fixture("centos-busybox.files/images/pxeboot/initrd.img")).unwrap();
    let stage2 = std::fs::read(fixture("centos-busybox.files/images/install.img")).unwrap();
    let started = Instant::now();
    let mut jobs: Vec<(Child, std::path::PathBuf, &[u8])> = Vec::new();
    for i in 0..100 {
        let out = dir.path().join(format!("tftp{i}"));
        let child = Command::new("curl")
            .args(["-s", "--max-time", "120", "--tftp-blksize", "1468", "-o"])
            .arg(&out)
            .arg(served.tftp_url("iso/images/pxeboot/initrd.img"))
            .spawn()
            .unwrap();
        jobs.push((child, out, &initrd));
    }
    for i in 0..20 {
        let out = dir.path().join(format!("ftp{i}"));
        let child = Command::new("curl").args(["-s", "--max-time", "120", "-o"]).arg(&out).arg(served.ftp_url("images/install.img")).spawn().unwrap();
        jobs.push((child, out, &stage2));
    }
    for (mut child, out, want) in jobs {
        assert!(child.wait().unwrap().success(), "{} failed", out.display());
        assert!(std::fs::read(&out).unwrap() == want, "{} differs", out.display());
    }
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn serving_a_4_gib_iso_is_ready_fast_and_small() {
    let served = Served::start(&fixture("big.iso"), "50101-50110", &["--kernel", "before.bin", "--initrd", "zafter.bin"]);
    assert!(served.ready_after < Duration::from_secs(1), "ready after {:?}", served.ready_after);
    let rss_kib = common::proc_status_kib(served.child.id(), "VmRSS");
    assert!(rss_kib < 64 * 1024, "RSS {rss_kib} KiB");
    // And the part beyond 4 GiB is served from the right extent.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tail");
    let size = std::fs::metadata(fixture("big.files/huge.img")).unwrap().len();
    let from = size - 65536;
    let (ok, got) = curl(&["-r", &format!("{from}-"), &served.ftp_url("huge.img")], &out);
    let mut want = vec![0u8; 65536];
    std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(fixture("big.files/huge.img")).unwrap(), &mut want, from).unwrap();
    assert!(ok && got == want, "the last 64 KiB of huge.img differ");
}

#[test]
fn clients_outside_allow_are_not_served() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50111-50120", &["--allow", "192.0.2.0/24"]);
    let reply = tftp_raw(served.tftp, &request(1, b"pxelinux.0", &[])).unwrap();
    assert_eq!((reply.0, reply.1), (TFTP_ERROR, ACCESS_VIOLATION));
    let dir = tempfile::tempdir().unwrap();
    let (ok, _) = curl(&[&served.ftp_url("README")], &dir.path().join("r"));
    assert!(!ok, "FTP served a client outside --allow");
    drop(served);
    let served = Served::start(&fixture("centos-busybox.iso"), "50111-50120", &["--allow", "127.0.0.0/8"]);
    let (ok, _) = curl(&[&served.ftp_url("README")], &dir.path().join("r"));
    assert!(ok, "FTP refused a client inside --allow");
}

#[test]
fn tree_serves_a_directory_read_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ks")).unwrap();
    std::fs::write(dir.path().join("ks/kickstart.cfg"), b"text\nreboot\n").unwrap();
    let tree = dir.path().to_str().unwrap().to_string();
    let served = Served::start(&fixture("centos-busybox.iso"), "50121-50130", &["--tree", &tree]);
    let out = tempfile::tempdir().unwrap();
    let (ok, got) = curl(&[&served.ftp_url("ks/kickstart.cfg")], &out.path().join("k"));
    assert!(ok && got == b"text\nreboot\n");
    let replies = ftp_session(served.ftp, &["USER anonymous", "PASS x@", "DELE ks/kickstart.cfg", "MKD x"]);
    assert!(replies[3].starts_with("550") && replies[4].starts_with("550"), "{replies:?}");
    assert!(dir.path().join("ks/kickstart.cfg").exists() && !dir.path().join("x").exists());
    let (ok, got) = curl(&["--path-as-is", &served.ftp_url("../../../../etc/passwd")], &out.path().join("p"));
    assert!(!ok || !String::from_utf8_lossy(&got).contains("root:"), "--tree escaped its root");
}

#[test]
fn a_busy_port_is_named_and_exits_4() {
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let out = pxelab()
        .args(["serve", "--bind", "127.0.0.1", "--tftp-port", &port, "--ftp-port", "0", "--http-port", "0", "--iso"])
        .arg(fixture("centos-busybox.iso"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(&format!("UDP port {port} on 127.0.0.1 is already in use")), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", std::process::id())), "owner not named: {stderr}");
}

#[test]
fn bad_serve_arguments_exit_3() {
    let iso = fixture("centos-busybox.iso");
    for (args, says) in [
        (&["--bind", "0.0.0.0"][..], "would serve on every interface"),
        (&["--bind", "127.0.0.1", "--allow", "10.0.0.0/33"], "is not an address range"),
        (&["--bind", "127.0.0.1", "--passive-ports", "9-1"], "is not a port range"),
        (&["--bind", "127.0.0.1", "--tree", "/nonexistent/tree"], "cannot serve --tree"),
    ] {
        let out = pxelab().args(["serve", "--tftp-port", "0", "--ftp-port", "0", "--http-port", "0", "--iso"]).arg(&iso).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// A lone fast transfer busy-polls for its ACKs (vendor/README.md); it must
/// still let the server answer other clients while it runs.
#[test]
fn a_fast_transfer_does_not_hold_up_other_requests() {
    let served = Served::start(&fixture("centos-busybox.iso"), "50090-50095", &[]);
    let dir = tempfile::tempdir().unwrap();
    let (big, small) = (dir.path().join("big"), dir.path().join("small"));
    let want = std::fs::read(fixture("centos-busybox.files/images/install.img")).unwrap();
    let mut long = Command::new("curl")
        .args(["-s", "--max-time", "60", "--tftp-blksize", "512", "-o"])
        .arg(&big)
        .arg(served.tftp_url("iso/images/install.img"))
        .spawn()
        .unwrap();
    // Until its first bytes land, the long transfer has not started.
    let start = Instant::now();
    while std::fs::metadata(&big).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "the long transfer did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let boot_msg = curl(&[&served.tftp_url("boot.msg")], &small).1;
    for _ in 0..5 {
        assert_eq!(curl(&[&served.tftp_url("boot.msg")], &small).1, boot_msg);
    }
    assert!(!boot_msg.is_empty());
    assert!(long.try_wait().unwrap().is_none(), "the short requests were only answered after the long transfer");
    assert!(long.wait().unwrap().success());
    assert!(std::fs::read(&big).unwrap() == want, "the long transfer's bytes differ");
}

/// SIGTERM while an HTTP and an FTP download are in flight: both finish
/// byte-identical before the server exits (mini-redis's graceful
/// shutdown); with only an idle FTP session open, it exits at once.
#[test]
fn a_stop_lets_transfers_in_flight_finish_and_does_not_wait_for_idle_sessions() {
    let mut served = Served::start(&fixture("centos-busybox.iso"), "50096-50099", &[]);
    let dir = tempfile::tempdir().unwrap();
    let want = std::fs::read(fixture("centos-busybox.files/images/install.img")).unwrap();
    // About a second each: in flight at the signal, and well inside the 5 s
    // the server gives them even when the machine is busy (the other tests
    // of this binary run beside it).
    let rate = format!("{}", want.len());
    let mut downloads: Vec<(std::path::PathBuf, Child)> = ["iso/images/install.img", "images/install.img"]
        .iter()
        .zip([served.http_url("iso/images/install.img"), served.ftp_url("images/install.img")])
        .map(|(name, url)| {
            let out = dir.path().join(name.replace('/', "_"));
            let child = Command::new("curl").args(["-s", "--max-time", "30", "--limit-rate", &rate, "-o"]).arg(&out).arg(url).spawn().unwrap();
            (out, child)
        })
        .collect();
    let start = Instant::now();
    while downloads.iter().any(|(out, _)| std::fs::metadata(out).map(|m| m.len()).unwrap_or(0) == 0) {
        assert!(start.elapsed() < Duration::from_secs(10), "the downloads did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe { libc::kill(served.child.id() as i32, libc::SIGTERM) };
    let signalled = Instant::now();
    for (out, child) in &mut downloads {
        assert!(child.wait().unwrap().success(), "{} was cut off by the stop", out.display());
        assert!(std::fs::read(&*out).unwrap() == want, "{}: the bytes differ", out.display());
    }
    let status = served.child.wait().unwrap();
    assert!(status.success(), "serve exited {status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5), "stopped after {:?}", signalled.elapsed());

    // Nothing in flight, an FTP client idle in its session: no wait.
    let mut idle = Served::start(&fixture("centos-busybox.iso"), "50096-50099", &[]);
    let session = std::net::TcpStream::connect(idle.ftp).unwrap();
    let mut greeting = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&session), &mut greeting).unwrap();
    assert!(greeting.starts_with("220"), "{greeting}");
    unsafe { libc::kill(idle.child.id() as i32, libc::SIGTERM) };
    let signalled = Instant::now();
    assert!(idle.child.wait().unwrap().success());
    assert!(signalled.elapsed() < Duration::from_secs(1), "an idle session held the stop for {:?}", signalled.elapsed());
}

/// pxelab's own ports must differ (exit 3, naming both options), a passive
/// range held entirely by another process stops `serve` (exit 4, naming
/// the holder), and a data connection that finds no free passive port is
/// logged, not only answered 425.
#[test]
fn own_ports_must_differ_and_a_busy_passive_range_is_named() {
    let iso = fixture("centos-busybox.iso");
    let serve = |extra: &[&str]| pxelab().args(["serve", "--bind", "127.0.0.1", "--tftp-port", "0", "--iso"]).arg(&iso).args(extra).output().unwrap();
    for (extra, says) in [
        (&["--ftp-port", "16921", "--passive-ports", "16921-16921"][..], "--passive-ports 16921-16921 holds --ftp-port 16921"),
        (&["--ftp-port", "17000", "--http-port", "17000"], "--ftp-port and --http-port are both 17000"),
        (&["--ftp-port", "0", "--http-port", "16950", "--passive-ports", "16940-16960"], "holds --http-port 16950"),
    ] {
        let out = serve(extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{extra:?}: {stderr}");
        assert!(stderr.contains(says) && !stderr.contains("another process"), "{extra:?}: {stderr}");
    }
    let holder = std::net::TcpListener::bind("127.0.0.1:16970").unwrap();
    let out = serve(&["--ftp-port", "0", "--http-port", "0", "--passive-ports", "16970-16970"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("every FTP passive port in 16970-16970") && stderr.contains(&format!("pid {}", std::process::id())), "{stderr}");
    drop(holder);

    // Free at the start, taken afterwards: the download fails, and says why in the log.
    let mut child = pxelab()
        .args(["serve", "--json", "--bind", "127.0.0.1", "--tftp-port", "0", "--ftp-port", "0", "--http-port", "0", "--passive-ports", "16971-16971", "--iso"])
        .arg(&iso)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut ready).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let _taken = std::net::TcpListener::bind("127.0.0.1:16971").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ok, _) = curl(&[&format!("ftp://{}/.treeinfo", ready["ftp"].as_str().unwrap())], &dir.path().join("t"));
    assert!(!ok, "no passive port, no download");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no FTP passive port free") && stderr.contains("425"), "{stderr}");
}
