//! Reading the host's input buffers (`docs/vm.md` section 5): big-endian integers, byte
//! strings as a `u32` length and the bytes.

use alloc::vec::Vec;

/// A cursor over bytes; every read is checked, `None` past the end.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Some(u32::from_be_bytes(a))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Some(u64::from_be_bytes(a))
    }

    /// 32 bytes.
    pub fn hash(&mut self) -> Option<[u8; 32]> {
        let mut a = [0; 32];
        a.copy_from_slice(self.take(32)?);
        Some(a)
    }

    /// A `u32` length and that many bytes.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// The bytes not read yet (nothing is consumed).
    pub fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or(&[])
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// Appends a `u32` length and `b`.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}
