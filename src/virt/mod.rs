//! libvirt: the network's bootp patch and pxelab's domains.

pub mod netxml;
