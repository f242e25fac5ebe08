//! pxelab's error type and its mapping to exit codes.
//!
//! Every error a user can see is one line saying what went wrong and what to
//! do about it. The [`Kind`] decides the process exit code, so scripts can
//! tell a bad ISO (3) from a missing libvirtd (4) without parsing text.

use std::fmt;

/// What class of failure this is; each maps to one documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything not covered below.
    Other,
    /// The command line itself is wrong (clap reports most of these).
    Usage,
    /// An input the user gave is unusable: the ISO, an address, a path.
    BadInput,
    /// The host is not ready: libvirt unreachable, a port busy, a system file missing.
    Environment,
    /// A wait (`--wait-for`, `--timeout`) ran out.
    Timeout,
    /// The verb exists in the CLI but is not built yet.
    NotImplemented,
}

impl Kind {
    /// The process exit code for this kind (see README, "Exit codes").
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Other | Kind::NotImplemented => 1,
            Kind::Usage => 2,
            Kind::BadInput => 3,
            Kind::Environment => 4,
            Kind::Timeout => 5,
        }
    }

    /// The kind behind an exit code (of a pxelab child process).
    pub fn from_exit_code(code: i32) -> Kind {
        match code {
            2 => Kind::Usage,
            3 => Kind::BadInput,
            4 => Kind::Environment,
            5 => Kind::Timeout,
            _ => Kind::Other,
        }
    }
}

/// A user-facing error: a kind and a one-line message.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        // One line, always: a message built from hostile input (an ISO's
        // volume id, a path) must not be able to forge further output lines.
        let message = message.into().replace(['\n', '\r'], " ");
        Error { kind, message }
    }
    pub fn bad_input(message: impl Into<String>) -> Error {
        Error::new(Kind::BadInput, message)
    }
    pub fn environment(message: impl Into<String>) -> Error {
        Error::new(Kind::Environment, message)
    }
    pub fn other(message: impl Into<String>) -> Error {
        Error::new(Kind::Other, message)
    }
    pub fn not_implemented(what: &str) -> Error {
        Error::new(
            Kind::NotImplemented,
            format!("`pxelab {what}` is not implemented yet; see the README for what works today"),
        )
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
