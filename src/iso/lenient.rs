//! The image as the ISO reader sees it, forgiving what xorriso and the
//! kernel forgive.
//!
//! ECMA-119 says the volume descriptor set terminator's body is zero, and
//! hadris-iso refuses an image whose terminator carries anything there;
//! xorriso and Linux's isofs read such images, since nothing in those bytes
//! means anything. So the terminator's body is read as zeros. The image is
//! read with positioned reads (`pread`), never changed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

const SECTOR: u64 = 2048;
/// Volume descriptors start at sector 16; a sane image has a handful.
const MAX_DESCRIPTORS: u64 = 64;

/// A read-only view of `file` with the terminator's reserved bytes zeroed.
pub struct Lenient {
    file: File,
    len: u64,
    pos: u64,
    /// The terminator's body: bytes 7..2048 of its sector.
    zeroed: Option<std::ops::Range<u64>>,
}

impl Lenient {
    pub fn new(file: File, len: u64) -> io::Result<Lenient> {
        let zeroed = terminator(&file)?.map(|sector| sector * SECTOR + 7..(sector + 1) * SECTOR);
        Ok(Lenient { file, len, pos: 0, zeroed })
    }
}

/// The sector of the volume descriptor set terminator (type 255), if the
/// descriptors from sector 16 on lead to one.
fn terminator(file: &File) -> io::Result<Option<u64>> {
    let mut head = [0u8; 7];
    for sector in 16..16 + MAX_DESCRIPTORS {
        if file.read_exact_at(&mut head, sector * SECTOR).is_err() || &head[1..6] != b"CD001" {
            return Ok(None);
        }
        if head[0] == 255 {
            return Ok(Some(sector));
        }
    }
    Ok(None)
}

impl Read for Lenient {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        if let Some(zeroed) = &self.zeroed {
            let (start, end) = (self.pos, self.pos + n as u64);
            let (from, to) = (start.max(zeroed.start), end.min(zeroed.end));
            if from < to {
                buf[(from - start) as usize..(to - start) as usize].fill(0);
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Lenient {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the image"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_terminators_body_reads_as_zeros_and_nothing_else_changes() {
        let mut image = vec![0u8; 19 * SECTOR as usize];
        for (sector, kind) in [(16usize, 1u8), (17, 255)] {
            let at = sector * SECTOR as usize;
            image[at] = kind;
            image[at + 1..at + 6].copy_from_slice(b"CD001");
            image[at + 6] = 1;
        }
        let body = 17 * SECTOR as usize + 100;
        image[body] = 0xAB; // a reserved byte xorriso ignores
        image[16 * SECTOR as usize + 100] = 0xCD; // a real descriptor's byte
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&image).unwrap();
        let mut lenient = Lenient::new(file, image.len() as u64).unwrap();
        let mut read = Vec::new();
        lenient.read_to_end(&mut read).unwrap();
        assert_eq!(read.len(), image.len());
        assert_eq!(read[body], 0);
        assert_eq!(read[16 * SECTOR as usize + 100], 0xCD);
        assert_eq!(&read[17 * SECTOR as usize..17 * SECTOR as usize + 7], &image[17 * SECTOR as usize..17 * SECTOR as usize + 7]);
        lenient.seek(SeekFrom::Start(body as u64 - 1)).unwrap();
        let mut two = [0u8; 2];
        lenient.read_exact(&mut two).unwrap();
        assert_eq!(two, [0, 0]);
    }
}
