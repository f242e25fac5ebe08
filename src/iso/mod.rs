//! The ISO reader: an index of an installer ISO's files (no mount, no copy)
//! and the detection of which distribution it holds.

mod detect;
mod index;
mod lenient;
mod treeinfo;

pub use detect::{detect, url_segment, DetectError, Distro, Family, Overrides, Repo, Source, SERVER_PLACEHOLDER};
pub use index::{Extent, IsoError, IsoFile, IsoIndex, NameSource, Node, NodeId, NodeKind};
pub use treeinfo::TreeInfo;
