//! Throwaway ssh for the remote-host tests: host and client keys, an sshd
//! config that lets only the client key in as root, and an `ssh` wrapper
//! (first on pxelab's PATH) that keeps known_hosts in the test's directory,
//! never in root's home.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Writes into `d`: `host`/`client` keys, `authorized_keys`, `sshd_config`
/// (listening on `listen`:`port`, pid file in `d`), `ssh_config` and `bin/ssh`.
pub fn write_files(d: &Path, listen: &str, port: u16) {
    for key in ["host", "client"] {
        let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(d.join(key)).output().unwrap();
        assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
    let config = format!(
        "Port {port}\nListenAddress {listen}\nHostKey {d}/host\nAuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {d}/sshd.pid\n",
        d = d.display()
    );
    std::fs::write(d.join("sshd_config"), config).unwrap();
    std::fs::write(d.join("ssh_config"), format!("UserKnownHostsFile {}/known_hosts\nGlobalKnownHostsFile /dev/null\n", d.display())).unwrap();
    std::fs::create_dir_all(d.join("bin")).unwrap();
    let wrapper = d.join("bin/ssh");
    std::fs::write(&wrapper, format!("#!/bin/sh\nexec /usr/bin/ssh -F {}/ssh_config \"$@\"\n", d.display())).unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // sshd's privilege separation wants its empty directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
}

/// `d/bin` (the `ssh` wrapper) first on PATH.
pub fn path_env(d: &Path) -> String {
    format!("{}:{}", d.join("bin").display(), std::env::var("PATH").unwrap_or_default())
}
