//! pxelab's error type and its mapping to exit codes.
//!
//! Every error a user can see is one line saying what went wrong and what to
//! do about it. The [`Kind`] decides the process exit code, so scripts can
//! tell a bad ISO (3) from a missing libvirtd (4) without parsing text.
//!
//! Each part has its own error type (`IsoError`, `BootError`, `VirtError`);
//! the `From` impls at the end of this file are the one place
//! that decides which of them is the user's input (3) and which the host's
//! state (4), so the lab uses `?` and never maps errors by hand. (`ServeError`
//! is the exception: its fix names the verb's own options, so the lab maps it
//! with `lab::server_error`.)

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
}

impl Kind {
    /// The process exit code for this kind (see README, "Exit codes").
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Other => 1,
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
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(Kind::Usage, message)
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

use crate::boot::{BootError, MenuError};
use crate::iso::{DetectError, IsoError};
use crate::virt::netxml::XmlError;
use crate::virt::VirtError;

impl From<IsoError> for Error {
    /// Every ISO failure is the ISO's: a missing, truncated or foreign file.
    fn from(e: IsoError) -> Error {
        Error::bad_input(e.to_string())
    }
}

impl From<DetectError> for Error {
    fn from(e: DetectError) -> Error {
        Error::bad_input(e.to_string())
    }
}

impl From<MenuError> for Error {
    fn from(e: MenuError) -> Error {
        Error::bad_input(e.to_string())
    }
}

impl From<BootError> for Error {
    /// A missing syslinux file is the host's (install the package); a menu
    /// that cannot be written comes from the ISO or the user's arguments.
    fn from(e: BootError) -> Error {
        match e {
            BootError::Syslinux(e) => Error::environment(e.to_string()),
            BootError::Menu(e) => e.into(),
        }
    }
}

impl From<XmlError> for Error {
    fn from(e: XmlError) -> Error {
        VirtError::Xml(e).into()
    }
}

impl From<VirtError> for Error {
    fn from(e: VirtError) -> Error {
        match e {
            VirtError::NoNetwork(_) | VirtError::NoDomain(_) | VirtError::Refused(_) => Error::bad_input(e.to_string()),
            VirtError::Xml(XmlError::NoIpv4Dhcp { .. }) | VirtError::Xml(XmlError::BadValue { .. }) => Error::bad_input(e.to_string()),
            VirtError::Connect { .. } | VirtError::NotReady(_) | VirtError::Libvirt { .. } | VirtError::Xml(_) => Error::environment(e.to_string()),
        }
    }
}
