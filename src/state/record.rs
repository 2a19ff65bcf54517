//! A journal record's bytes (the table is in `segments.rs`): the head
//! (magic, body length, CRC-32 of the body) and a page's body (its first
//! sequence number, source, cursor and chunks), written and parsed, and
//! how many entries a chunk holds.

use std::io;

pub(super) const MAGIC: &[u8; 4] = b"ARJ1";
/// Version byte of a chunk: several entry frames under one key (the
/// journal writes them, `frames.rs`).
pub(super) const CHUNK_V2: u8 = 2;
pub(super) const HEAD: usize = 12;
const KIND_PAGE: u8 = 1;

/// A page record: its bytes up to the chunks (head and body start) and the
/// CRC over the whole body.
pub(super) fn record_head(
    first: u64,
    source: &str,
    cursor: Option<&[u8]>,
    chunks: &[(Vec<u8>, u64)],
) -> io::Result<Vec<u8>> {
    let cursor = cursor.unwrap_or_default();
    let mut body = Vec::with_capacity(32 + source.len() + cursor.len() + 4 * chunks.len());
    body.push(KIND_PAGE);
    body.extend_from_slice(&first.to_be_bytes());
    for part in [source.as_bytes(), cursor] {
        body.extend_from_slice(&len32(part.len())?.to_be_bytes());
        body.extend_from_slice(part);
    }
    body.extend_from_slice(&len32(chunks.len())?.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&body);
    let mut body_len = body.len();
    for (c, _) in chunks {
        let n = len32(c.len())?.to_be_bytes();
        crc.update(&n);
        crc.update(c);
        body_len += 4 + c.len();
    }
    let mut out = Vec::with_capacity(HEAD + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len32(body_len)?.to_be_bytes());
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn len32(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a journal page over 4 GiB"))
}

pub(super) struct Page {
    pub first: u64,
    pub source: String,
    pub cursor: Option<Vec<u8>>,
    /// Each chunk's offset in the body, length and entry count.
    pub chunks: Vec<(u64, u32, u64)>,
}

pub(super) fn parse_page(body: &[u8]) -> Option<Page> {
    let mut r = Reader { buf: body, at: 0 };
    if r.take(1)? != [KIND_PAGE] {
        return None;
    }
    let first = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let source = String::from_utf8(r.sized()?.to_vec()).ok()?;
    let cursor = r.sized()?;
    let cursor = (!cursor.is_empty()).then(|| cursor.to_vec());
    let n = r.u32()?;
    let mut chunks = Vec::with_capacity((n as usize).min(body.len() / 4));
    for _ in 0..n {
        let len = r.u32()?;
        let at = r.at as u64;
        let chunk = r.take(len as usize)?;
        chunks.push((at, len, chunk_len(chunk)?));
    }
    (r.at == body.len()).then_some(Page { first, source, cursor, chunks })
}

/// How many entries a stored value holds: a chunk says; a schema-1 value is
/// one entry frame.
pub(super) fn chunk_len(v: &[u8]) -> Option<u64> {
    match v.first()? {
        &CHUNK_V2 => v.get(1..5)?.try_into().ok().map(u32::from_be_bytes).map(u64::from),
        _ => Some(1),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }
    fn sized(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}
