//! libvirt: the network's bootp patch and pxelab's domains.
//!
//! Every libvirt call blocks (it is an RPC to libvirtd). [`Libvirt::call`]
//! is the one place they run: on tokio's blocking pool, never on the async
//! runtime's threads. The operations themselves ([`network`], [`domain`])
//! are plain synchronous functions over a `&Connect`, so each reads top to
//! bottom and a whole multi-call operation runs in one `call`.

pub mod accel;
pub mod console;
pub mod domain;
pub mod domxml;
pub mod network;
pub mod netxml;

use std::sync::Arc;

use virt::connect::Connect;
use virt::error::ErrorNumber;

/// A failure talking to libvirt, or a refusal of what was asked.
#[derive(Debug, thiserror::Error)]
pub enum VirtError {
    #[error("cannot connect to libvirt at {uri}: {message}; {}", connect_hint(uri))]
    Connect { uri: String, message: String },
    #[error("network {0:?} does not exist; list networks with `virsh net-list --all`")]
    NoNetwork(String),
    #[error("domain {0:?} does not exist; list pxelab's VMs with `pxelab vm list`")]
    NoDomain(String),
    #[error("{what}: {message}")]
    Libvirt { what: String, message: String, code: i64 },
    /// The request cannot be done as asked (exit 3).
    #[error("{0}")]
    Refused(String),
    /// The host is not in a state that allows it (exit 4).
    #[error("{0}")]
    NotReady(String),
    #[error(transparent)]
    Xml(#[from] netxml::XmlError),
}

/// Whether `uri` names a libvirtd on another host (or reached over the
/// network): `driver+ssh://…`, `+tcp`, `+tls`, `+libssh`, `+libssh2`, or a
/// host name with no `+unix`. `qemu:///system` and `qemu+unix:///…` are
/// local.
pub fn is_remote(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once("://") else { return false };
    let transport = scheme.split_once('+').map(|(_, t)| t);
    let host = rest.split('/').next().unwrap_or("");
    match transport {
        Some("unix" | "ext") => false,
        Some(_) => true,
        None => !host.is_empty(),
    }
}

/// What to try when a connection fails: local and remote differ.
fn connect_hint(uri: &str) -> String {
    if is_remote(uri) {
        format!("can this host reach that one, and does libvirtd run there? (check with `virsh -c '{uri}' hostname`)")
    } else {
        "is libvirtd running? (start it with `libvirtd -d`, or pass another URI with -c)".to_string()
    }
}

impl VirtError {
    /// Wraps a libvirt error with what pxelab was doing.
    pub fn libvirt(what: impl Into<String>, e: virt::error::Error) -> VirtError {
        VirtError::Libvirt { what: what.into(), message: e.message().to_string(), code: e.code() as i64 }
    }

    fn is(e: &virt::error::Error, code: ErrorNumber) -> bool {
        std::mem::discriminant(&e.code()) == std::mem::discriminant(&code)
    }
}

/// A connection to libvirtd, shared by every call.
#[derive(Clone)]
pub struct Libvirt {
    conn: Arc<Connection>,
    uri: String,
}

struct Connection(Connect);

impl Drop for Connection {
    fn drop(&mut self) {
        // virt 0.4 has no Drop for Connect: without this, the socket leaks.
        let _ = self.0.close();
    }
}

impl std::fmt::Debug for Libvirt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libvirt").field("uri", &self.uri).finish()
    }
}

impl Libvirt {
    /// Connects to `uri` (on the blocking pool).
    pub async fn connect(uri: &str) -> Result<Libvirt, VirtError> {
        tracing::debug!("connecting to libvirt at {uri}");
        let owned = uri.to_string();
        let conn = tokio::task::spawn_blocking(move || {
            // libvirt prints every error to stderr by default; pxelab reports them itself.
            virt::error::clear_error_callback();
            Connect::open(Some(&owned))
        })
        .await
        .map_err(|e| VirtError::Connect { uri: uri.to_string(), message: e.to_string() })?
        .map_err(|e| VirtError::Connect { uri: uri.to_string(), message: e.message().to_string() })?;
        Ok(Libvirt { conn: Arc::new(Connection(conn)), uri: uri.to_string() })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Runs `f` with the connection on the blocking pool: the one way pxelab
    /// calls libvirt. Each call is traced (`-vv`) with where it was made and
    /// how long it took.
    #[track_caller]
    pub fn call<T, F>(&self, f: F) -> impl std::future::Future<Output = Result<T, VirtError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&Connect) -> Result<T, VirtError> + Send + 'static,
    {
        let at = std::panic::Location::caller();
        let conn = self.conn.clone();
        async move {
            let started = std::time::Instant::now();
            let result = tokio::task::spawn_blocking(move || f(&conn.0)).await.map_err(|e| VirtError::Libvirt {
                what: "libvirt call".into(),
                message: e.to_string(),
                code: -1,
            })?;
            tracing::trace!(
                "libvirt call at {}:{}: {} in {:.1} ms",
                at.file(),
                at.line(),
                if result.is_ok() { "ok" } else { "failed" },
                started.elapsed().as_secs_f64() * 1e3
            );
            result
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn remote_uris_are_told_from_local_ones() {
        for local in ["qemu:///system", "qemu:///session", "qemu+unix:///system?socket=/run/x.sock", "test:///default"] {
            assert!(!super::is_remote(local), "{local}");
        }
        for remote in
            ["qemu+ssh://root@10.0.0.2/system", "qemu+tcp://h/system", "qemu+tls://h/system", "qemu://h/system", "qemu+libssh2://u@h/system?keyfile=k"]
        {
            assert!(super::is_remote(remote), "{remote}");
        }
    }
}
