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
    assert_eq!(v["kernel_args"], "inst.repo=ftp://{server}/");
    assert_eq!(v["volume_id"], "PXELAB-BUSYBOX-1-x86_64");
    assert_eq!(v["size_bytes"], std::fs::metadata(&iso).unwrap().len());
    assert_eq!(v["names_from"], "rock-ridge");
    assert!(v["files"].as_u64().unwrap() >= 10);

    // stage2 is null, not missing, when the ISO has none.
    let r = run(&["iso", "inspect", fixture("debian.iso").to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v.get("stage2").is_some_and(|s| s.is_null()), "{}", r.stdout);
}

#[test]
fn inspect_menu_shows_what_would_be_served() {
    let iso = fixture("centos-di.iso");
    let r = run(&["iso", "inspect", iso.to_str().unwrap(), "--menu", "--server", "192.0.2.7", "--local-boot-default"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("APPEND initrd=iso/images/pxeboot/initrd.img inst.repo=ftp://192.0.2.7/"), "{}", r.stdout);
    let local = r.stdout.find("LABEL local").unwrap();
    assert!(r.stdout[local..].find("MENU DEFAULT").unwrap() < r.stdout[local..].find("LABEL install").unwrap());
}

#[test]
fn overrides_apply_from_the_command_line() {
    let iso = fixture("rr-deep.iso");
    let r = run(&[
        "iso", "inspect", iso.to_str().unwrap(), "--json",
        "--kernel", "l1/shallow.bin", "--initrd", "l1/shallow.bin", "--append", "console=ttyS0",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((v["family"].as_str(), v["source"].as_str()), (Some("custom"), Some("override")));
    assert_eq!(v["kernel_args"], "console=ttyS0");
}

/// Bad input: exit 3, one line on stderr that names the file and the fix.
#[test]
fn bad_isos_give_one_line_and_exit_3() {
    for (name, says) in [
        ("not-an-iso.iso", "is not an ISO 9660 image"),
        ("truncated.iso", "is truncated"),
        ("no-kernel.iso", "no network-bootable kernel found"),
    ] {
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
fn usage_errors_exit_2() {
    assert_eq!(run(&["iso", "inspect"]).code, 2);
    assert_eq!(run(&["no-such-verb"]).code, 2);
    assert_eq!(run(&["serve", "--iso", "x.iso", "--bind", "not-an-ip"]).code, 2);
    assert_eq!(run(&["up", "--iso", "x.iso", "--accel", "warp"]).code, 2);
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
