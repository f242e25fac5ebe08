//! The command line as a user meets it: `iso inspect` output, one-line
//! errors and the documented exit codes.

mod common;

use common::{fixture, pxelab};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = pxelab().args(args).env_remove("LIBVIRT_DEFAULT_URI").output().unwrap();
    Run {
        code: out.status.code().expect("pxelab was killed by a signal"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[test]
fn inspect_json_has_the_documented_fields() {
    let iso = fixture("centos-busybox.iso");
    let r = run(&["iso", "inspect", iso.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["family"], "rhel");
    assert_eq!(v["name"], "PXELab Busybox Installer");
    assert_eq!(v["version"], "1.0");
    assert_eq!(v["arch"], "x86_64");
    assert_eq!(v["kernel"], "images/pxeboot/vmlinuz");
    assert_eq!(v["initrd"], "images/pxeboot/initrd.img");
    assert_eq!(v["stage2"], "images/install.img");
    assert_eq!(v["kernel_args"], "inst.repo=http://{server}/iso/");
    assert_eq!(v["volume_id"], "PXELAB-BUSYBOX-1-x86_64");
    assert_eq!(v["size_bytes"], std::fs::metadata(&iso).unwrap().len());
    assert_eq!(v["names_from"], "rock-ridge");
    assert!(v["files"].as_u64().unwrap() >= 10);

    // stage2 is null, not missing, when the ISO has none.
    let r = run(&["iso", "inspect", fixture("debian.iso").to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v.get("stage2").is_some_and(|s| s.is_null()), "{}", r.stdout);
}

/// The installer's architecture, from each distribution's own record of
/// it, and the shim for it: RHEL's `.treeinfo`, Debian's `install.a64/`,
/// Ubuntu's `.disk/info` (an arm64 live-server layout made here).
#[test]
fn inspect_reports_an_arm64_installer_and_its_shim() {
    let inspect = |iso: &std::path::Path| -> serde_json::Value {
        let r = run(&["iso", "inspect", iso.to_str().unwrap(), "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    };
    let rhel = inspect(&fixture("centos-busybox-arm64.iso"));
    assert_eq!((&rhel["family"], &rhel["arch"], &rhel["efi_loader"]), (&"rhel".into(), &"aarch64".into(), &"EFI/BOOT/BOOTAA64.EFI".into()), "{rhel}");
    let debian = inspect(&fixture("debian-arm64.iso"));
    assert_eq!((&debian["family"], &debian["arch"], &debian["kernel"]), (&"debian".into(), &"arm64".into(), &"install.a64/vmlinuz".into()), "{debian}");
    assert_eq!(debian["efi_loader"], "EFI/boot/bootaa64.efi", "{debian}");
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("casper")).unwrap();
    std::fs::create_dir_all(tree.join(".disk")).unwrap();
    std::fs::write(tree.join("casper/vmlinuz"), b"arm64 kernel").unwrap();
    std::fs::write(tree.join("casper/initrd"), b"arm64 initrd").unwrap();
    std::fs::write(tree.join(".disk/info"), "Ubuntu-Server 24.04.1 LTS \"Noble Numbat\" - Release arm64 (20240827)\n").unwrap();
    let iso = dir.path().join("ubuntu-arm64.iso");
    let made = std::process::Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-R", "-J", "-V", "Ubuntu-Server 24.04.1 LTS arm64", "-o", iso.to_str().unwrap(), tree.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(made.success());
    let ubuntu = inspect(&iso);
    assert_eq!((&ubuntu["family"], &ubuntu["arch"]), (&"ubuntu".into(), &"arm64".into()), "{ubuntu}");
}

#[test]
fn inspect_menu_shows_what_would_be_served() {
    let iso = fixture("centos-di.iso");
    let r = run(&["iso", "inspect", iso.to_str().unwrap(), "--menu", "--server", "192.0.2.7", "--local-boot-default", "--repo", "ftp"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("APPEND initrd=iso/images/pxeboot/initrd.img inst.repo=ftp://192.0.2.7/"), "{}", r.stdout);
    let local = r.stdout.find("LABEL local").unwrap();
    assert!(r.stdout[local..].find("MENU DEFAULT").unwrap() < r.stdout[local..].find("LABEL install").unwrap());
}

#[test]
fn overrides_apply_from_the_command_line() {
    let iso = fixture("rr-deep.iso");
    let r = run(&["iso", "inspect", iso.to_str().unwrap(), "--json", "--kernel", "l1/shallow.bin", "--initrd", "l1/shallow.bin", "--append", "console=ttyS0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((v["family"].as_str(), v["source"].as_str()), (Some("custom"), Some("override")));
    assert_eq!(v["kernel_args"], "console=ttyS0");
}

/// Bad input: exit 3, one line on stderr that names the file and the fix.
#[test]
fn bad_isos_give_one_line_and_exit_3() {
    for (name, says) in
        [("not-an-iso.iso", "is not an ISO 9660 image"), ("truncated.iso", "is truncated"), ("no-kernel.iso", "no network-bootable kernel found")]
    {
        let path = fixture(name);
        let r = run(&["iso", "inspect", path.to_str().unwrap()]);
        assert_eq!(r.code, 3, "{name}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{name}: {}", r.stderr);
        assert!(r.stderr.starts_with("pxelab: error: ") && r.stderr.contains(says), "{name}: {}", r.stderr);
        assert!(r.stderr.contains(name), "{name}: the error must name the file: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    let r = run(&["iso", "inspect", "/nonexistent/x.iso"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("cannot open /nonexistent/x.iso"), "{}", r.stderr);

    let r = run(&["iso", "inspect", fixture("rr-deep.iso").to_str().unwrap(), "--kernel", "missing"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
}

#[test]
fn json_errors_are_json_on_stdout_too() {
    let r = run(&["iso", "inspect", fixture("truncated.iso").to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 3);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["error"]["exit_code"], 3);
    assert!(v["error"]["message"].as_str().unwrap().contains("is truncated"));
}

#[test]
fn usage_errors_exit_2_and_bad_values_exit_3() {
    let iso = fixture("centos-busybox.iso");
    let iso = iso.to_str().unwrap();
    // The shape of the command line: 2, with the whole message on one line
    // and the verb's own help.
    let usage: [(&[&str], &str, &str); 8] = [
        (&["iso", "inspect"], "required arguments were not provided: <ISO>", "pxelab iso inspect"),
        (&["serve"], "required arguments were not provided: --iso <ISO>, --bind <ADDR>", "pxelab serve"),
        (&["no-such-verb"], "unrecognized subcommand 'no-such-verb'", "pxelab"),
        (&[], "`pxelab` needs a command: up, down, status, serve, vm, net, dhcp-config, doctor, iso, completions", "pxelab"),
        (&["vm"], "`pxelab vm` needs a command: new, list, rm, console", "pxelab vm"),
        (&["net"], "`pxelab net` needs a command: patch, restore", "pxelab net"),
        (&["dhcp-config", "--format", "isc", "--proxy", "--server", "10.0.0.1"], "--proxy goes with --format dnsmasq", "pxelab dhcp-config"),
        (&["serve", "--iso", iso, "--bind", "127.0.0.1", "--http-port", "none", "--repo", "http"], "--http-port none leaves", "pxelab serve"),
    ];
    for (args, message, verb) in usage {
        let r = run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(message), "{args:?}: {}", r.stderr);
        if !message.starts_with("--") {
            assert!(r.stderr.ends_with(&format!("; see `{verb} --help`\n")), "{args:?}: {}", r.stderr);
        }
    }
    // A value that does not parse or is out of range: 3, clap's list of
    // possible values kept, and the verb's own help.
    let serve = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["serve", "--iso", iso, "--bind", "127.0.0.1"].iter().map(|s| s.to_string()).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let bad: Vec<(Vec<String>, &str, &str)> = vec![
        (serve(&["--tftp-port", "70000"]), "70000 is not in 0..=65535", "pxelab serve"),
        (serve(&["--max-transfers", "0"]), "0 is not in 1..=100000", "pxelab serve"),
        (serve(&["--passive-ports", "5-1"]), "is not a port range", ""),
        (serve(&["--allow", "10.0.0.0/33"]), "is not an address range", ""),
        (vec!["serve".into(), "--iso".into(), "x.iso".into(), "--bind".into(), "not-an-ip".into()], "invalid IP address syntax", "pxelab serve"),
        (vec!["up".into(), "--iso".into(), "x.iso".into(), "--accel".into(), "warp".into()], "possible values: auto, kvm, tcg", "pxelab up"),
        (vec!["dhcp-config".into(), "--format".into(), "xml".into()], "possible values: isc, dnsmasq, windows, libvirt", "pxelab dhcp-config"),
        (vec!["completions".into(), "tcsh".into()], "possible values: bash, zsh, fish", "pxelab completions"),
        (vec!["net".into(), "patch".into(), "--server".into(), "999.1.1.1".into()], "invalid IP address syntax", "pxelab net patch"),
    ];
    for (args, message, verb) in bad {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(message), "{args:?}: {}", r.stderr);
        if !verb.is_empty() {
            assert!(r.stderr.ends_with(&format!("; see `{verb} --help`\n")), "{args:?}: {}", r.stderr);
        }
    }
}

#[test]
fn help_lists_every_verb_and_the_exit_codes() {
    let r = run(&["--help"]);
    assert_eq!(r.code, 0);
    for verb in ["up", "down", "status", "serve", "vm", "net", "dhcp-config", "doctor", "iso"] {
        assert!(r.stdout.lines().any(|l| l.trim_start().starts_with(verb)), "--help lacks {verb}:\n{}", r.stdout);
    }
    assert!(r.stdout.contains("3 bad input"));
    assert!(r.stdout.contains("LIBVIRT_DEFAULT_URI"));
}

/// Usage errors read like every other error: one line, `pxelab: error: …`,
/// clap's suggestion kept, and JSON on stdout with `--json`.
#[test]
fn usage_errors_are_one_line_in_the_documented_format() {
    let r = run(&["up", "--iso", "x.iso", "--netwrk", "lab0"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("pxelab: error: unexpected argument '--netwrk'"), "{}", r.stderr);
    assert!(r.stderr.contains("'--network'"), "the suggestion is kept: {}", r.stderr);
    assert!(r.stderr.contains("`pxelab up --help`"), "{}", r.stderr);

    let r = run(&["--json", "no-such-verb"]);
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["exit_code"], 2);
    assert!(v["error"]["message"].as_str().unwrap().contains("no-such-verb"), "{v}");

    // Help and version are not errors.
    assert_eq!(run(&["--version"]).code, 0);
    assert_eq!(run(&["up", "--help"]).code, 0);
}

/// A process whose stdout is a pipe its reader already closed, as after
/// `pxelab … | head -1` or `| true`.
fn run_with_closed_stdout(args: &[&str]) -> (i32, String) {
    let mut child = pxelab()
        .args(args)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env("PXELAB_STATE_DIR", std::env::temp_dir().join("pxelab-closed-stdout-test"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (out.status.code().expect("pxelab was killed by a signal"), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_closed_stdout_is_not_a_crash_for_any_verb() {
    let iso = fixture("centos-busybox.iso");
    let iso = iso.to_str().unwrap();
    for args in [
        &["dhcp-config", "--format", "windows", "--server", "10.0.0.1"][..],
        &["--json", "dhcp-config", "--format", "isc", "--server", "10.0.0.1"],
        &["status"],
        &["--json", "status"],
        &["iso", "inspect", iso],
        &["--json", "iso", "inspect", iso, "--menu"],
        &["--help"],
        // An error's JSON on a closed stdout: still the error's exit code.
        &["--json", "iso", "inspect", "/nonexistent.iso"],
    ] {
        let (code, stderr) = run_with_closed_stdout(args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let want = if args.contains(&"/nonexistent.iso") { 3 } else { 0 };
        assert_eq!(code, want, "{args:?}: {stderr}");
    }
}

/// Every README section an error message points at exists.
#[test]
fn readme_sections_named_in_messages_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let headings: Vec<String> = readme.lines().filter(|l| l.starts_with('#')).map(|l| l.trim_start_matches('#').trim().trim_matches('`').to_string()).collect();
    let re = regex::Regex::new(r#"README, \\?"([^"\\]+)\\?""#).unwrap();
    let mut named = 0;
    for (rel, path) in common::reference_files(&root.join("src")) {
        let text = std::fs::read_to_string(&path).unwrap();
        for cap in re.captures_iter(&text) {
            named += 1;
            assert!(headings.iter().any(|h| h == &cap[1]), "{rel} names README section {:?}, which does not exist", &cap[1]);
        }
    }
    assert!(named > 0, "no README section is named anywhere: the pattern is stale");
}

#[test]
fn inspect_with_a_server_shows_it_in_the_args_line_too() {
    let iso = fixture("centos-busybox.iso");
    let r = run(&["iso", "inspect", iso.to_str().unwrap(), "--server", "192.0.2.7"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let args = r.stdout.lines().find(|l| l.starts_with("Args")).unwrap();
    assert!(args.contains("inst.repo=http://192.0.2.7/iso/") && !args.contains("{server}"), "{args}");
    let r = run(&["--json", "iso", "inspect", iso.to_str().unwrap(), "--menu", "--server", "192.0.2.7"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["kernel_args"], "inst.repo=http://192.0.2.7/iso/");
    assert!(v["menu"].as_str().unwrap().contains("inst.repo=http://192.0.2.7/iso/"));
}

#[test]
fn the_no_kernel_error_lists_every_place_looked_in() {
    let r = run(&["iso", "inspect", fixture("no-kernel.iso").to_str().unwrap()]);
    assert_eq!(r.code, 3);
    for dir in ["images/pxeboot/", "isolinux/", "install.amd/", "debian-installer/amd64/", "casper/"] {
        assert!(r.stderr.contains(dir), "{dir}: {}", r.stderr);
    }
}

/// Flags that contradict each other are refused before libvirt is asked
/// (the URI here does not exist): a usage error names the fix.
#[test]
fn contradictory_up_flags_are_refused_before_anything_else() {
    let iso = fixture("centos-busybox.iso");
    let iso = iso.to_str().unwrap();
    let nowhere = "qemu+unix:///system?socket=/nonexistent/sock";
    // --expect implies --wait-for installer, which needs a VM.
    let r = run(&["-c", nowhere, "up", "--iso", iso, "--no-vm", "--expect", "ready"]);
    assert_eq!(r.code, 2, "options that do not go together: {}", r.stderr);
    assert!(r.stderr.contains("--wait-for needs a VM"), "{}", r.stderr);
    let r = run(&["-c", nowhere, "up", "--iso", iso, "--wait-for", "kernel", "--expect", "ready"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--wait-for installer"), "{}", r.stderr);
    let r = run(&["-c", nowhere, "up", "--iso", iso, "--no-vm", "--timeout", "3"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--timeout needs a VM"), "{}", r.stderr);
}

#[test]
fn vm_console_says_json_does_not_apply() {
    let r = run(&["--json", "vm", "console", "some-vm"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--json does not apply"), "{}", r.stderr);
}

/// What the README documents of the JSON outputs is there.
#[test]
fn the_readme_documents_every_json_shape() {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for needle in [
        r#"{"event":"detached","pid":…,"log":…,"lab":{…}}"#,
        "(`--json`: its text in `menu`)",
        "`reached` maps each\nstage reached to the seconds since the lab started, from `created` on",
        "`kept_vms`",
    ] {
        assert!(readme.contains(needle), "README lacks {needle:?}");
    }
}

/// `-q` prints nothing but an error; the exit code carries the rest.
#[test]
fn quiet_prints_only_errors() {
    let iso = fixture("centos-busybox.iso");
    let r = run(&["-q", "iso", "inspect", iso.to_str().unwrap()]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    let r = run(&["-q", "--json", "iso", "inspect", iso.to_str().unwrap()]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    let r = run(&["-q", "iso", "inspect", fixture("not-an-iso.iso").to_str().unwrap()]);
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("pxelab: error: "), "{}", r.stderr);
    // With --json the error is JSON on stdout too, quiet or not.
    let r = run(&["-q", "--json", "iso", "inspect", fixture("not-an-iso.iso").to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["error"]["exit_code"], 3);
    let r = run(&["-q", "-v", "iso", "inspect", iso.to_str().unwrap()]);
    assert_eq!(r.code, 2, "-q and -v contradict: {}", r.stderr);
}

/// A remote libvirt host that cannot be reached: one line naming the URI
/// and how to check it, exit 4, and no lab started (the URI names a closed
/// port on loopback; remote.rs has the hosts that answer).
#[test]
fn an_unreachable_remote_host_is_one_clear_error() {
    let state = tempfile::tempdir().unwrap();
    let iso = fixture("centos-busybox.iso");
    let remote = "qemu+ssh://nobody@127.0.0.1:1/system";
    for args in [vec!["up", "--iso", iso.to_str().unwrap(), "--no-vm"], vec!["vm", "console", "pxelab-x-1"], vec!["vm", "list"]] {
        let out = pxelab().arg("-c").arg(remote).args(&args).env("PXELAB_STATE_DIR", state.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("cannot connect to libvirt at {remote}")) && stderr.contains(&format!("virsh -c '{remote}' hostname")), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    assert!(!common::lab_dir(state.path(), "default").join("lab.json").exists(), "no lab");
    assert_eq!(common::journal_entries(state.path()), 0, "nothing journaled");
}

/// `status --watch` prints only changes, so it may never write again: when
/// its reader goes away (`| head -1`) it still ends, with exit 0.
#[test]
fn status_watch_ends_when_its_reader_goes_away() {
    use std::io::BufRead;
    let state = tempfile::tempdir().unwrap();
    let mut watch = pxelab()
        .args(["--json", "status", "--watch"])
        .env("PXELAB_STATE_DIR", state.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(watch.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&first).unwrap(), serde_json::json!([]), "every lab: none");
    drop(stdout);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = watch.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(10) {
            let _ = watch.kill();
            panic!("status --watch kept running with nobody reading");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
}

/// `down` and `status` on a state directory they cannot read name the path
/// and say what to do, not just the OS error.
#[test]
fn state_errors_name_the_path_and_the_fix() {
    let state = tempfile::tempdir().unwrap();
    let record = state.path().join("lab.json");
    std::fs::create_dir(&record).unwrap();
    for verb in ["down", "status"] {
        let out = pxelab().arg(verb).env("PXELAB_STATE_DIR", state.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{verb}: {stderr}");
        assert!(stderr.contains(&record.display().to_string()) && stderr.contains("remove that file"), "{verb}: {stderr}");
    }
    std::fs::remove_dir(&record).unwrap();
    let journal = state.path().join("journal");
    std::fs::write(&journal, "not a directory").unwrap();
    let out = pxelab().arg("down").env("PXELAB_STATE_DIR", state.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(&journal.display().to_string()) && stderr.contains("is a directory pxelab can write"), "{stderr}");
}

/// Images the standard frowns on but xorriso reads are read; images that
/// are really broken get one sentence, never a Rust debug dump; a FIFO is
/// refused at once instead of waiting for a writer.
#[test]
fn iso_errors_are_sentences_and_reserved_bytes_are_forgiven() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("centos-busybox.iso")).unwrap();
    // The terminator follows the primary descriptor (and any others) from sector 16.
    let terminator = (16..32).find(|s| good[s * 2048] == 255 && &good[s * 2048 + 1..s * 2048 + 6] == b"CD001").expect("a terminator");
    let mut odd = good.clone();
    odd[terminator * 2048 + 100] = 0xAB;
    let odd_path = dir.path().join("reserved-byte.iso");
    std::fs::write(&odd_path, &odd).unwrap();
    let xorriso = std::process::Command::new("xorriso").args(["-indev"]).arg(&odd_path).args(["-find", "/.treeinfo"]).output().unwrap();
    assert!(xorriso.status.success(), "xorriso reads it: {}", String::from_utf8_lossy(&xorriso.stderr));
    let r = run(&["iso", "inspect", odd_path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "pxelab reads what xorriso reads: {}", r.stderr);

    // A primary volume descriptor with a bad version byte is broken for real.
    let mut broken = good;
    broken[16 * 2048 + 6] = 9;
    let broken_path = dir.path().join("broken.iso");
    std::fs::write(&broken_path, &broken).unwrap();
    let r = run(&["iso", "inspect", broken_path.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("Context") && !r.stderr.contains("kind:") && r.stderr.contains("is not an ISO 9660 image"), "{}", r.stderr);

    let fifo = dir.path().join("pipe.iso");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let started = std::time::Instant::now();
    let r = run(&["iso", "inspect", fifo.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("it is a FIFO"), "{}", r.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// The defects a walk through every verb found (#26), each kept as a check.
#[test]
fn hints_name_what_is_there_and_json_is_one_object_per_line() {
    let ubuntu = fixture("ubuntu-busybox.iso");
    let centos = fixture("centos-busybox.iso");
    let (ubuntu, centos) = (ubuntu.to_str().unwrap(), centos.to_str().unwrap());
    // A hint names a flag that was given.
    let r = run(&["serve", "--iso", ubuntu, "--bind", "127.0.0.1", "--tftp-port", "0", "--ftp-port", "0", "--http-port", "none"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("drop --http-port none") && !r.stderr.contains("--repo"), "{}", r.stderr);
    let state = tempfile::NamedTempFile::new().unwrap();
    for verb in ["status", "down"] {
        let out = pxelab().arg(verb).env("PXELAB_STATE_DIR", state.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{verb}: {stderr}");
        assert!(stderr.contains(&format!("{} is not a directory; point PXELAB_STATE_DIR at a directory", state.path().display())), "{verb}: {stderr}");
    }
    // 0 is "any free port" only for a server pxelab runs.
    let r = run(&["dhcp-config", "--format", "isc", "--server", "10.0.0.1", "--http-port", "0"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    // An IPv6 server is bracketed in a URL.
    let r = run(&["iso", "inspect", centos, "--server", "::1"]);
    assert!(r.stdout.contains("inst.repo=http://[::1]/iso/"), "{}", r.stdout);
    // --bind takes a host's address.
    let r = run(&["serve", "--iso", centos, "--bind", "255.255.255.255"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    // One JSON object per line, everywhere.
    for args in [&["--json", "iso", "inspect", centos][..], &["--json", "status"], &["--json", "dhcp-config", "--format", "windows", "--server", "10.0.0.1"]] {
        let r = run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout.lines().count(), 1, "{args:?}: {}", r.stdout);
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap();
    }
    let r = run(&["--json", "dhcp-config", "--format", "dnsmasq", "--proxy", "--server", "10.0.0.1"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((v["format"].as_str(), v["proxy"].as_bool()), (Some("dnsmasq"), Some(true)), "{v}");
    let r = run(&["--json", "completions", "bash"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--json does not apply"), "{}", r.stderr);
    // Help that cannot be written is a failure.
    for flag in ["--help", "--version"] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let out = pxelab().arg(flag).stdout(full).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{flag}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// `serve | head -1` in text mode: the servers print nothing after their
/// first line, so only a check of the reader can end them; it does, within
/// a second or two.
#[test]
fn serve_in_text_mode_ends_when_its_reader_goes_away() {
    let mut child = pxelab()
        .args(["serve", "--bind", "127.0.0.1", "--tftp-port", "0", "--ftp-port", "0", "--http-port", "0", "--passive-ports", "16990-16995", "--iso"])
        .arg(fixture("centos-busybox.iso"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut reader, &mut first).unwrap();
    assert!(first.starts_with("pxelab: serving") && first.contains("HTTP 127.0.0.1:"), "{first}");
    drop(reader);
    let closed = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if closed.elapsed() > std::time::Duration::from_secs(10) {
            let _ = child.kill();
            panic!("serve kept running with nobody reading");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(closed.elapsed() < std::time::Duration::from_secs(3), "{:?}", closed.elapsed());
}

/// The README's samples are what the program prints: `iso inspect` run as
/// the README shows it (its byte count aside, which moves with Debian's
/// kernel), and every check id `doctor` can report has a row in its table.
#[test]
fn the_readmes_samples_are_what_the_program_prints() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let command = "    $ pxelab iso inspect fixtures/out/centos-busybox.iso\n";
    let start = readme.find(command).expect("the iso inspect sample") + command.len();
    let sample: Vec<&str> = readme[start..].lines().take_while(|l| l.starts_with("    ")).map(|l| &l[4..]).collect();
    let out = pxelab().current_dir(root).args(["iso", "inspect", "fixtures/out/centos-busybox.iso"]).output().unwrap();
    let bytes = regex_free_bytes;
    assert_eq!(bytes(&String::from_utf8_lossy(&out.stdout)), bytes(&(sample.join("\n") + "\n")), "README's iso inspect sample");

    let table: String = readme.lines().filter(|l| l.starts_with("| `")).collect::<Vec<_>>().join("\n");
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(root.join("src/lab/doctor")).unwrap() {
        let code = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for literal in code.split('"').skip(1).step_by(2) {
            let head = literal.split('.').next().unwrap_or_default();
            let is_id = ["lab", "journal", "syslinux", "ovmf", "uefi", "accel", "libvirt", "network", "ports", "firewall", "vm"].contains(&head)
                && literal.chars().all(|c| c.is_ascii_lowercase() || c == '.');
            if is_id && !ids.contains(&literal.to_string()) {
                ids.push(literal.to_string());
            }
        }
    }
    assert!(ids.len() > 20, "the ids were not found in the source: {ids:?}");
    for id in ids {
        assert!(table.contains(&format!("`{id}`")), "doctor's check {id} has no row in the README's table");
    }
}

/// `(N bytes,` with the number replaced: the one thing in the sample that
/// depends on the packages the fixture was built from.
fn regex_free_bytes(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        match (line.find(" ("), line.find(" bytes,")) {
            (Some(open), Some(bytes)) if open < bytes => out.push_str(&format!("{} (N{}", &line[..open], &line[bytes..])),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A reader that closed stderr (`2>&1 | head -1`) does not turn an error into
/// a crash: the exit code stays the documented one, not a panic's 101.
#[test]
fn a_closed_stderr_keeps_the_exit_code() {
    let mut fds = [0; 2];
    // SAFETY: two ints for pipe(2); the read end is closed at once, so every write to the other fails.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    // SAFETY: fds[1] is an open descriptor this test owns from here on.
    let closed = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) };
    // -vv logs before the connection fails, so stderr is written to before the error.
    let status = pxelab()
        .args(["-vv", "-c", "qemu+unix:///system?socket=/nonexistent/pxelab.sock", "vm", "list"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(closed))
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(4), "cannot connect: exit 4, as with stderr open ({status:?})");
}
