//! The embedded TFTP and FTP servers (not built yet: see issue "Embedded
//! TFTP and FTP servers"). They will serve a [`crate::boot::BootTree`] and
//! the ISO's files in place.
