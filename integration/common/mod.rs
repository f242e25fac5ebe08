//! Helpers shared by the integration tests: where the fixtures are, and how
//! to walk a reference tree.
#![allow(dead_code)]

pub mod net;
pub mod served;
pub mod ssh;

use std::path::{Path, PathBuf};

/// `fixtures/out/NAME`, which `make fixtures` builds. Missing fixtures fail
/// the test (not skip it): a green run must mean the checks ran.
pub fn fixture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/out").join(name);
    assert!(path.exists(), "{} is missing: run `make fixtures` first", path.display());
    path
}

/// Every regular file under `root`, as (path relative to root, absolute path),
/// sorted; symlinks are not followed.
pub fn reference_files(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let path = entry.path();
        if kind.is_dir() {
            walk(root, &path, out);
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push((rel, path));
        }
    }
}

/// A `/proc/PID/status` field given in kB (`VmRSS`, `VmHWM`), in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The pxelab binary built for these tests.
pub fn pxelab() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_pxelab"))
}

/// One JSON object per line of a verb's `--json` output (`up`'s events).
pub fn events(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// The directory of the lab in `state` when there is one lab directory
/// (`labs/<network>`, `labs/<network>@<host>`), else where a lab on
/// `network` of this host's libvirt would be.
pub fn lab_dir(state: &Path, network: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(state.join("labs")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    match dirs.as_slice() {
        [one] => one.clone(),
        _ => state.join("labs").join(network),
    }
}

/// Journal entries anywhere in `state`: every lab's and the top one (`net patch`).
pub fn journal_entries(state: &Path) -> usize {
    let count = |dir: PathBuf| std::fs::read_dir(dir.join("journal")).map(|d| d.count()).unwrap_or(0);
    let labs: Vec<PathBuf> = std::fs::read_dir(state.join("labs")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    count(state.to_path_buf()) + labs.into_iter().map(count).sum::<usize>()
}

/// What python3-junitparser reads from a JUnit file: each suite, then each case and its result.
pub fn junit_cases(file: &Path) -> String {
    let script = "import sys\nfrom junitparser import JUnitXml, Failure\nxml = JUnitXml.fromfile(sys.argv[1])\n\
        for suite in xml:\n    print(f'suite {suite.name} tests={suite.tests} failures={suite.failures}')\n\
        \x20   for case in suite:\n        failed = [r for r in case.result if isinstance(r, Failure)]\n\
        \x20       print(f'case {case.name} ' + ('failed: ' + failed[0].message if failed else 'passed'))\n";
    let out = std::process::Command::new("/usr/bin/python3").args(["-c", script]).arg(file).output().expect("python3 with junitparser");
    assert!(out.status.success(), "junitparser: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
