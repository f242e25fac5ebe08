//! What a packager or a shell user gets: completions that their shells
//! parse, man pages that groff renders without a warning, and `make install`
//! / `make uninstall` that put exactly those files under a prefix and take
//! exactly them away again.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::pxelab;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn completions_parse_in_their_shells() {
    for (shell, checker) in [("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")] {
        let out = pxelab().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8(out.stdout).unwrap();
        for verb in ["up", "down", "status", "doctor", "dhcp-config"] {
            assert!(script.contains(verb), "{shell} completion lacks {verb}");
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &script).unwrap();
        let check = Command::new(checker).arg("-n").arg(file.path()).output().unwrap();
        assert!(check.status.success(), "{checker} -n: {}", String::from_utf8_lossy(&check.stderr));
    }
    // An unknown shell is a bad value (exit 3), with the ones there are.
    let bad = pxelab().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values: bash, zsh, fish"));
}

#[test]
fn man_pages_render_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("make").current_dir(root()).args(["-s", "man"]).arg(format!("MAN={}", dir.path().display())).output().unwrap();
    assert!(out.status.success(), "make man: {}", String::from_utf8_lossy(&out.stderr));
    let pages = files(dir.path());
    for page in ["pxelab.1", "pxelab-up.1", "pxelab-down.1", "pxelab-vm-new.1", "pxelab-net-patch.1", "pxelab-completions.1"] {
        assert!(pages.iter().any(|p| p == page), "{page} missing: {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.starts_with("pxelab-help")), "clap's `help` verb got pages: {pages:?}");
    for page in &pages {
        let path = dir.path().join(page);
        let groff = Command::new("groff").args(["-ww", "-man", "-Tutf8", "-z"]).arg(&path).output().unwrap();
        assert!(groff.status.success() && groff.stderr.is_empty(), "groff -ww {page}: {}", String::from_utf8_lossy(&groff.stderr));
        let man = Command::new("man").arg("-l").arg(&path).env("MANWIDTH", "80").env("MANPAGER", "cat").env("PAGER", "cat").output().unwrap();
        let text = String::from_utf8_lossy(&man.stdout);
        assert!(man.status.success() && man.stderr.is_empty(), "man -l {page}: {}", String::from_utf8_lossy(&man.stderr));
        assert!(text.contains("NAME") && text.contains("pxelab"), "{page}:\n{text}");
    }
    let up = String::from_utf8_lossy(
        &Command::new("man").arg("-l").arg(dir.path().join("pxelab-up.1")).env("MANWIDTH", "80").env("MANPAGER", "cat").output().unwrap().stdout,
    )
    .into_owned();
    assert!(up.contains("--menu-default") && up.contains("--no-fast-dhcp"), "the page is the flags': {up}");
}

#[test]
fn make_install_and_uninstall_touch_exactly_their_files() {
    let prefix = tempfile::tempdir().unwrap();
    // Its own build folders: `make deb` in the next test uses target/'s.
    let build = tempfile::tempdir().unwrap();
    let make = |target: &str| {
        let out = Command::new("make")
            .current_dir(root())
            .args(["-s", target])
            .arg(format!("PREFIX={}", prefix.path().display()))
            .arg(format!("MAN={}", build.path().join("man").display()))
            .arg(format!("COMPLETIONS={}", build.path().join("completions").display()))
            .arg(format!("PXELAB={}", env!("CARGO_BIN_EXE_pxelab")))
            .output()
            .unwrap();
        assert!(out.status.success(), "make {target}: {}", String::from_utf8_lossy(&out.stderr));
    };
    make("install");
    let installed = files(prefix.path());
    for file in [
        "bin/pxelab",
        "share/man/man1/pxelab.1",
        "share/man/man1/pxelab-up.1",
        "share/bash-completion/completions/pxelab",
        "share/zsh/vendor-completions/_pxelab",
        "share/fish/vendor_completions.d/pxelab.fish",
    ] {
        assert!(installed.iter().any(|f| f == file), "{file} not installed: {installed:?}");
    }
    assert!(installed.iter().all(|f| f.starts_with("bin/pxelab") || f.starts_with("share/")), "{installed:?}");
    let version = Command::new(prefix.path().join("bin/pxelab")).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("pxelab "));
    // Something else under the prefix stays.
    let other = prefix.path().join("share/man/man1/other.1");
    std::fs::write(&other, ".TH OTHER 1\n").unwrap();
    make("uninstall");
    assert_eq!(files(prefix.path()), ["share/man/man1/other.1"], "uninstall removes exactly pxelab's files");
}

/// Removes the package on drop, if this test installed it.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "pxelab"]).output();
    }
}

#[test]
fn the_debian_package_is_lintian_clean_and_installs() {
    let already = Command::new("dpkg").args(["-s", "pxelab"]).output().unwrap().status.success();
    assert!(!already, "a pxelab package is installed on this machine already; this test would replace it");
    let out = Command::new("make").current_dir(root()).args(["-s", "deb"]).output().unwrap();
    assert!(out.status.success(), "make deb: {}", String::from_utf8_lossy(&out.stderr));
    let deb = root().join(format!("target/debian/pxelab_{}-1_amd64.deb", env!("CARGO_PKG_VERSION")));
    assert!(deb.exists(), "{} missing", deb.display());

    let lintian = Command::new("lintian").args(["--fail-on", "error"]).arg(&deb).output().unwrap();
    let report = String::from_utf8_lossy(&lintian.stdout);
    assert!(lintian.status.success() && !report.lines().any(|l| l.starts_with("E:")), "lintian: {report}{}", String::from_utf8_lossy(&lintian.stderr));

    let fields = String::from_utf8(Command::new("dpkg-deb").args(["-f"]).arg(&deb).args(["Depends", "Recommends"]).output().unwrap().stdout).unwrap();
    for dep in ["libvirt0", "pxelinux", "syslinux-common", "libvirt-daemon-system", "qemu-system-x86", "ovmf"] {
        assert!(fields.contains(dep), "{dep} not in Depends/Recommends: {fields}");
    }
    let contents = String::from_utf8(Command::new("dpkg-deb").arg("-c").arg(&deb).output().unwrap().stdout).unwrap();
    for file in [
        "./usr/bin/pxelab",
        "./usr/share/man/man1/pxelab-up.1.gz",
        "./usr/share/bash-completion/completions/pxelab",
        "./usr/share/doc/pxelab/README.md",
        "./usr/share/doc/pxelab/copyright",
    ] {
        assert!(contents.contains(file), "{file} not in the package:\n{contents}");
    }

    let _installed = Installed;
    let install = Command::new("dpkg").arg("-i").arg(&deb).output().unwrap();
    assert!(install.status.success(), "dpkg -i: {}", String::from_utf8_lossy(&install.stderr));
    let version = Command::new("/usr/bin/pxelab").arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("pxelab {}", env!("CARGO_PKG_VERSION")));
    let iso = common::fixture("centos-busybox.iso");
    let inspect = Command::new("/usr/bin/pxelab").args(["iso", "inspect"]).arg(&iso).output().unwrap();
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("PXELab Busybox Installer"));
    let page = Command::new("man").args(["-w", "pxelab-up"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&page.stdout).trim(), "/usr/share/man/man1/pxelab-up.1.gz");
    let purge = Command::new("dpkg").args(["--purge", "pxelab"]).output().unwrap();
    assert!(purge.status.success(), "{}", String::from_utf8_lossy(&purge.stderr));
    assert!(!Path::new("/usr/bin/pxelab").exists(), "dpkg --purge left the binary");
}

/// docs/ci.md's GitHub Actions workflow and GitLab CI job: valid YAML
/// (yamllint), and the steps the guide promises (read with PyYAML).
#[test]
fn the_ci_examples_are_valid_yaml_with_the_promised_steps() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (github, gitlab) = (root.join("docs/ci/github-workflow.yml"), root.join("docs/ci/gitlab-ci.yml"));
    let lint = Command::new("yamllint").args(["-d", "relaxed"]).arg(&github).arg(&gitlab).output().expect("yamllint (make deps)");
    assert!(lint.status.success(), "yamllint: {}", String::from_utf8_lossy(&lint.stdout));
    let script = "import sys, yaml\n\
        gh = yaml.safe_load(open(sys.argv[1]))\n\
        steps = gh['jobs']['install']['steps']\n\
        runs = '\\n'.join(s.get('run', '') for s in steps)\n\
        assert 'MODE=\"0666\"' in runs, 'the /dev/kvm udev rule'\n\
        up = [s['run'] for s in steps if 'pxelab up' in s.get('run', '')][0]\n\
        for flag in ['--kickstart', '--wait-for installed', '--junit report.xml', '--artifacts', '--accel kvm']:\n    assert flag in up, flag\n\
        assert any(s.get('if') == 'always()' and 'upload-artifact' in s.get('uses', '') for s in steps), 'the report kept on failure'\n\
        gl = yaml.safe_load(open(sys.argv[2]))['install-smoke']\n\
        assert any('pxelab up' in line and '--wait-for installed' in line for line in gl['script'])\n\
        assert gl['artifacts']['reports']['junit'] == 'report.xml' and gl['artifacts']['when'] == 'always'\n\
        print('ok')\n";
    let out = Command::new("/usr/bin/python3").args(["-c", script]).arg(&github).arg(&gitlab).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
