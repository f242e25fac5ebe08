//! The FTP server: libunftp, anonymous and read-only, serving the ISO's
//! tree at `/` (or a directory, with `--tree`).
//!
//! Two storage backends, both read-only: [`IsoStorage`] reads files in place
//! from the ISO index, and [`ReadOnly`] wraps unftp-sbe-fs (which is
//! confined to its root by cap-std but can write) so that every write
//! answers 550. Paths never leave the root: the ISO index resolves `..` and
//! symlinks inside the image.
//!
//! pxelab accepts connections itself instead of calling libunftp's `listen`,
//! so that `--allow` and the session cap are applied before a client gets a
//! greeting. Passive data sockets bind to the control connection's local
//! address (libunftp does that), so they stay on the bind address too.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use libunftp::ServerBuilder;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use unftp_core::auth::{DefaultUser, UserDetail};
use unftp_core::storage::{self, Error, ErrorKind, Fileinfo, Metadata, StorageBackend, FEATURE_RESTART};

use super::allow::AllowList;
use super::transfer::{Counted, Events, FileReader, Protocol, Slot, TransferRecord};
use super::Limits;
use crate::boot::BootFile;
use crate::iso::{IsoIndex, NodeId, NodeKind};
use tokio_util::sync::CancellationToken;

const GREETING: &str = "pxelab FTP server (anonymous, read-only)";

/// A read-only `StorageBackend` impl: the read methods given, and every
/// write refused with 550 and reported. (`#[async_trait]` must see the whole
/// impl, so the macro writes all of it.)
macro_rules! read_only_backend {
    ($ty:ty, $meta:ty, { $($reads:tt)* }) => {
        #[async_trait]
        impl<U: UserDetail> StorageBackend<U> for $ty {
            type Metadata = $meta;

            $($reads)*

            async fn put<P: AsRef<Path> + Send + Debug, R: tokio::io::AsyncRead + Send + Sync + Unpin + 'static>(
                &self,
                _user: &U,
                _input: R,
                path: P,
                _start_pos: u64,
            ) -> storage::Result<u64> {
                Err(self.refuse("STOR", path.as_ref()))
            }

            async fn del<P: AsRef<Path> + Send + Debug>(&self, _user: &U, path: P) -> storage::Result<()> {
                Err(self.refuse("DELE", path.as_ref()))
            }

            async fn mkd<P: AsRef<Path> + Send + Debug>(&self, _user: &U, path: P) -> storage::Result<()> {
                Err(self.refuse("MKD", path.as_ref()))
            }

            async fn rename<P: AsRef<Path> + Send + Debug>(&self, _user: &U, from: P, _to: P) -> storage::Result<()> {
                Err(self.refuse("RNTO", from.as_ref()))
            }

            async fn rmd<P: AsRef<Path> + Send + Debug>(&self, _user: &U, path: P) -> storage::Result<()> {
                Err(self.refuse("RMD", path.as_ref()))
            }
        }
    };
}

/// Metadata of a file or directory in the ISO.
#[derive(Debug, Clone)]
pub struct IsoMeta {
    len: u64,
    dir: bool,
    mtime: Option<i64>,
}

impl Metadata for IsoMeta {
    fn len(&self) -> u64 {
        self.len
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
    fn is_file(&self) -> bool {
        !self.dir
    }
    fn is_symlink(&self) -> bool {
        false
    }
    fn modified(&self) -> storage::Result<SystemTime> {
        let secs = self.mtime.unwrap_or(0);
        Ok(if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        })
    }
    fn gid(&self) -> u32 {
        0
    }
    fn uid(&self) -> u32 {
        0
    }
}

/// The ISO's tree, read in place; with a lab's boot tree, also its
/// generated per-VM files under `/auto/` (answer files), which installers
/// may be pointed at over FTP as well as HTTP.
#[derive(Debug, Clone)]
pub struct IsoStorage {
    iso: Arc<IsoIndex>,
    events: Events,
    client: Option<SocketAddr>,
    generated: Option<Arc<crate::boot::BootTree>>,
}

/// The generated files' directory at the FTP root (see `answer.rs`).
const GENERATED_DIR: &str = "auto";

impl IsoStorage {
    pub fn new(iso: Arc<IsoIndex>, events: Events) -> Self {
        IsoStorage { iso, events, client: None, generated: None }
    }

    /// Also serves `tree`'s files under `/auto/`.
    pub fn with_generated(mut self, tree: Arc<crate::boot::BootTree>) -> Self {
        self.generated = Some(tree);
        self
    }

    /// A generated file at `path`, if `path` is under `/auto/` and the lab has it.
    fn generated(&self, path: &Path) -> Option<(String, BootFile)> {
        let tree = self.generated.as_ref()?;
        let path = crate::boot::normalize(path.to_str()?).ok()?;
        if !path.starts_with(&format!("{GENERATED_DIR}/")) {
            return None;
        }
        tree.open(&path).ok().map(|f| (path, f))
    }

    /// `/auto` and `/auto/<mac>`: directories of the generated files.
    fn generated_dir(&self, path: &Path) -> bool {
        self.generated.is_some()
            && path
                .to_str()
                .and_then(|p| crate::boot::normalize(p).ok())
                .is_some_and(|p| p == GENERATED_DIR || (p.starts_with(&format!("{GENERATED_DIR}/")) && p.matches('/').count() == 1))
    }

    fn resolve(&self, path: &Path) -> storage::Result<NodeId> {
        let path = path.to_str().ok_or(ErrorKind::PermanentFileNotAvailable)?;
        self.iso.lookup(path).ok_or_else(|| ErrorKind::PermanentFileNotAvailable.into())
    }

    fn meta(&self, id: NodeId) -> IsoMeta {
        let node = self.iso.node(id);
        match &node.kind {
            NodeKind::File(f) => IsoMeta { len: f.size, dir: false, mtime: node.mtime },
            _ => IsoMeta { len: 0, dir: true, mtime: node.mtime },
        }
    }
}

read_only_backend!(IsoStorage, IsoMeta, {
    fn supported_features(&self) -> u32 {
        FEATURE_RESTART
    }

    async fn metadata<P: AsRef<Path> + Send + Debug>(&self, _user: &U, path: P) -> storage::Result<IsoMeta> {
        if let Some((_, file)) = self.generated(path.as_ref()) {
            return Ok(IsoMeta { len: file.size(), dir: false, mtime: None });
        }
        if self.generated_dir(path.as_ref()) {
            return Ok(IsoMeta { len: 0, dir: true, mtime: None });
        }
        Ok(self.meta(self.resolve(path.as_ref())?))
    }

    async fn list<P: AsRef<Path> + Send + Debug>(&self, _user: &U, path: P) -> storage::Result<Vec<Fileinfo<PathBuf, IsoMeta>>> {
        let id = self.resolve(path.as_ref())?;
        let node = self.iso.node(id);
        let NodeKind::Dir { children } = &node.kind else {
            return Ok(vec![Fileinfo { path: PathBuf::from(&node.name), metadata: self.meta(id) }]);
        };
        let dir_path = self.iso.path_of(id);
        Ok(children
            .keys()
            .filter_map(|name| {
                // Symlinks are listed as what they point to; dangling ones are left out.
                let target = self.iso.lookup(&format!("{dir_path}/{name}"))?;
                Some(Fileinfo { path: PathBuf::from(name), metadata: self.meta(target) })
            })
            .collect())
    }

    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        _user: &U,
        path: P,
        start_pos: u64,
    ) -> storage::Result<Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>> {
        if let Some((shown, file)) = self.generated(path.as_ref()) {
            let client = self.client.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            let record = TransferRecord::new(&self.events, Protocol::Ftp, client, &format!("/{shown}"), file.size(), start_pos);
            return Ok(Box::new(FileReader::new(file, start_pos, record)));
        }
        let id = self.resolve(path.as_ref())?;
        let NodeKind::File(file) = &self.iso.node(id).kind else {
            return Err(ErrorKind::PermanentFileNotAvailable.into());
        };
        let client = self.client.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let shown = format!("/{}", self.iso.path_of(id));
        let record = TransferRecord::new(&self.events, Protocol::Ftp, client, &shown, file.size, start_pos);
        let file = BootFile::Iso { iso: self.iso.clone(), file: file.clone() };
        Ok(Box::new(FileReader::new(file, start_pos, record)))
    }

    async fn cwd<P: AsRef<Path> + Send + Debug>(&self, _user: &U, path: P) -> storage::Result<()> {
        if self.generated_dir(path.as_ref()) {
            return Ok(());
        }
        let id = self.resolve(path.as_ref()).map_err(|_| Error::from(ErrorKind::PermanentDirectoryNotAvailable))?;
        match self.iso.node(id).kind {
            NodeKind::Dir { .. } => Ok(()),
            _ => Err(ErrorKind::PermanentDirectoryNotAvailable.into()),
        }
    }
});

/// Reports a refused write; the same for both backends.
trait Refuse {
    fn events(&self) -> &Events;
    fn client(&self) -> Option<SocketAddr>;
    fn refuse(&self, command: &str, path: &Path) -> Error {
        let client = self.client().unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        self.events().refused(Protocol::Ftp, client, &format!("{command} {}", path.display()), "read-only server");
        ErrorKind::PermissionDenied.into()
    }
}

impl Refuse for IsoStorage {
    fn events(&self) -> &Events {
        &self.events
    }
    fn client(&self) -> Option<SocketAddr> {
        self.client
    }
}

/// A directory tree served read-only (unftp-sbe-fs underneath).
#[derive(Debug, Clone)]
pub struct ReadOnly {
    inner: Arc<unftp_sbe_fs::Filesystem>,
    /// The tree's canonical path, to tell which symlinks stay inside it.
    root: Arc<PathBuf>,
    events: Events,
    client: Option<SocketAddr>,
}

impl ReadOnly {
    pub fn new(root: &Path, events: Events) -> std::io::Result<Self> {
        Ok(ReadOnly { inner: Arc::new(unftp_sbe_fs::Filesystem::new(root)?), root: Arc::new(root.canonicalize()?), events, client: None })
    }

    /// Where a symlink at tree path `path` leads, as a tree path, or `None`
    /// when it leaves the tree (or dangles). unftp-sbe-fs (cap-std) already
    /// refuses to follow a link out of the tree, but would still list it
    /// with the host path it names, and reports a link's own size, not its
    /// target's (so clients that check SIZE see a short transfer).
    fn resolve_link(&self, path: &Path) -> Option<PathBuf> {
        let path = path.strip_prefix("/").unwrap_or(path);
        let target = std::fs::canonicalize(self.root.join(path)).ok()?;
        target.strip_prefix(self.root.as_ref()).ok().map(Path::to_path_buf)
    }
}

impl Refuse for ReadOnly {
    fn events(&self) -> &Events {
        &self.events
    }
    fn client(&self) -> Option<SocketAddr> {
        self.client
    }
}

read_only_backend!(ReadOnly, unftp_sbe_fs::Meta, {
    fn supported_features(&self) -> u32 {
        FEATURE_RESTART
    }

    async fn metadata<P: AsRef<Path> + Send + Debug>(&self, user: &U, path: P) -> storage::Result<Self::Metadata> {
        let meta = self.inner.metadata(user, path.as_ref()).await?;
        if !meta.is_symlink() {
            return Ok(meta);
        }
        match self.resolve_link(path.as_ref()) {
            Some(target) => self.inner.metadata(user, target).await,
            None => Err(ErrorKind::PermanentFileNotAvailable.into()),
        }
    }

    async fn list<P: AsRef<Path> + Send + Debug>(&self, user: &U, path: P) -> storage::Result<Vec<Fileinfo<PathBuf, Self::Metadata>>> {
        let dir = path.as_ref().to_path_buf();
        let mut out = Vec::new();
        // Links are listed as what they lead to; links out of the tree not at all.
        for entry in self.inner.list(user, path).await? {
            if !entry.metadata.is_symlink() {
                out.push(entry);
            } else if let Some(target) = self.resolve_link(&dir.join(&entry.path)) {
                if let Ok(metadata) = self.inner.metadata(user, target).await {
                    out.push(Fileinfo { path: entry.path, metadata });
                }
            }
        }
        Ok(out)
    }

    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &U,
        path: P,
        start_pos: u64,
    ) -> storage::Result<Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let size = self.inner.metadata(user, path.clone()).await.map(|m| m.len()).unwrap_or(0);
        let reader = self.inner.get(user, path, start_pos).await?;
        let client = self.client.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let record = TransferRecord::new(&self.events, Protocol::Ftp, client, &shown, size, start_pos);
        Ok(Box::new(Counted::new(reader, record)))
    }

    async fn cwd<P: AsRef<Path> + Send + Debug>(&self, user: &U, path: P) -> storage::Result<()> {
        self.inner.cwd(user, path).await
    }
});

/// A backend cloned for each session, told which client it serves (for transfer records).
pub trait SessionStorage: StorageBackend<DefaultUser> + Clone + 'static {
    fn with_client(&self, client: SocketAddr) -> Self;
}

impl SessionStorage for IsoStorage {
    fn with_client(&self, client: SocketAddr) -> Self {
        IsoStorage { client: Some(client), ..self.clone() }
    }
}

impl SessionStorage for ReadOnly {
    fn with_client(&self, client: SocketAddr) -> Self {
        ReadOnly { client: Some(client), ..self.clone() }
    }
}

/// Binds `addr` and returns the accept loop (run it in a task) and the bound address.
pub async fn start<S: SessionStorage>(
    addr: SocketAddr,
    storage: S,
    allow: AllowList,
    events: Events,
    limits: &Limits,
    stop: CancellationToken,
) -> std::io::Result<(impl std::future::Future<Output = ()> + Send + 'static, SocketAddr)>
where
    S::Metadata: Metadata,
{
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let sessions = Arc::new(AtomicUsize::new(0));
    let limits = limits.clone();
    let run = async move {
        // Sessions live in this set, so they end with the server. On `stop`
        // the listener closes; the transfers in flight finish (within the
        // deadline `Servers::stop` gives), and then every session closes,
        // idle ones too: an FTP client may hold a session for minutes.
        let mut open = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => accepted,
                Some(_) = open.join_next() => continue,
            };
            let (mut stream, client) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("FTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if !allow.allows(client.ip()) {
                events.refused(Protocol::Ftp, client, "connect", "client not in --allow");
                continue; // dropping the stream closes it unanswered
            }
            let Some(slot) = Slot::take(&sessions, limits.max_ftp_sessions) else {
                events.refused(Protocol::Ftp, client, "connect", "too many sessions");
                let _ = stream.write_all(b"421 Too many sessions, try again later\r\n").await;
                continue;
            };
            let session = storage.with_client(client);
            let server = match ServerBuilder::new(Box::new(move || session.clone()))
                .greeting(GREETING)
                .passive_ports(limits.passive_ports.clone())
                .idle_session_timeout(limits.ftp_idle_timeout.as_secs())
                .build()
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("FTP session setup failed: {e}");
                    continue;
                }
            };
            open.spawn(async move {
                let _slot = slot;
                if let Err(e) = server.service(stream).await {
                    tracing::debug!("FTP session with {client} ended: {e}");
                }
            });
        }
        drop(listener);
        events.in_flight().idle(Protocol::Ftp).await;
    };
    Ok((run, bound))
}
