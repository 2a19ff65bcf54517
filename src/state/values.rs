//! sled values of any length, stored in parts far below sled's blob
//! threshold.
//!
//! sled 0.34 writes a log item larger than a quarter of a segment (128 KiB
//! with the default 512 KiB segments) to a blob file of its own, which it
//! never fsyncs and creates with `create_new`: after a power cut such a file
//! can be missing, empty, or in the way of the next blob with the same
//! number (`File exists`, and the database no longer opens). A tree node
//! holds at most a few dozen items before it splits, so items of at most
//! [`PART`] bytes keep every node well below that threshold. A longer value
//! (a cursor with many ids, a large dead-lettered event) is stored as a
//! header under its key and the parts in the `parts` tree, written in the
//! same transaction.

use super::{Result, StateError};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

/// The largest item stored under one key.
pub(super) const PART: usize = 2048;

/// First byte of a header (no stored JSON or number starts with it): then
/// the part count (u32) and the value's length (u64), big-endian.
const HEADER: u8 = 0xFF;

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StateError>>;

fn part_key(tag: u8, key: &[u8], i: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 5);
    k.push(tag);
    k.extend_from_slice(key);
    k.extend_from_slice(&i.to_be_bytes());
    k
}

/// The part count a stored item announces (0 for an inline value).
fn parts_of(stored: &[u8]) -> u32 {
    match stored {
        [HEADER, a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// Whether `value` is stored as it is, under its key alone.
pub(super) fn fits_inline(value: &[u8]) -> bool {
    value.len() <= PART && value.first() != Some(&HEADER)
}

/// Whether a stored item is a value of its own (no parts belong to it).
pub(super) fn is_inline(stored: &[u8]) -> bool {
    parts_of(stored) == 0
}

/// Store `value` under `key` in `main` (parts in `parts`, under `tag`),
/// replacing what was there.
pub(super) fn put(
    main: &TransactionalTree,
    parts: &TransactionalTree,
    tag: u8,
    key: &[u8],
    value: &[u8],
) -> TxResult<()> {
    let old = main.get(key)?.map_or(0, |v| parts_of(&v));
    let n = if fits_inline(value) {
        main.insert(key, value)?;
        0
    } else {
        let n = u32::try_from(value.len().div_ceil(PART))
            .map_err(|_| ConflictableTransactionError::Abort(StateError::corrupt(key, "a value over 8 TiB")))?;
        for (i, part) in (0..n).zip(value.chunks(PART)) {
            parts.insert(part_key(tag, key, i), part)?;
        }
        let mut header = vec![HEADER];
        header.extend_from_slice(&n.to_be_bytes());
        header.extend_from_slice(&(value.len() as u64).to_be_bytes());
        main.insert(key, header)?;
        n
    };
    for i in n..old {
        parts.remove(part_key(tag, key, i))?;
    }
    Ok(())
}

/// Remove `key` and its parts.
pub(super) fn remove(main: &TransactionalTree, parts: &TransactionalTree, tag: u8, key: &[u8]) -> TxResult<()> {
    if let Some(old) = main.remove(key)? {
        for i in 0..parts_of(&old) {
            parts.remove(part_key(tag, key, i))?;
        }
    }
    Ok(())
}

/// The whole value of an item read from `main` under `key`.
pub(super) fn read(parts: &sled::Tree, tag: u8, key: &[u8], stored: sled::IVec) -> Result<Vec<u8>> {
    let n = parts_of(&stored);
    if stored.first() != Some(&HEADER) {
        return Ok(stored.to_vec());
    }
    let len = stored.get(5..13).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    let mut out = Vec::with_capacity(len.unwrap_or(0).min(1 << 30) as usize);
    for i in 0..n {
        match parts.get(part_key(tag, key, i)).map_err(StateError::storage)? {
            Some(p) => out.extend_from_slice(&p),
            None => return Err(StateError::corrupt(key, &format!("part {i} of {n} is missing"))),
        }
    }
    if Some(out.len() as u64) != len {
        return Err(StateError::corrupt(key, "its parts do not add up to its length"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sled::Transactional;

    fn db() -> (sled::Db, sled::Tree, sled::Tree) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (m, p) = (db.open_tree("m").unwrap(), db.open_tree("p").unwrap());
        (db, m, p)
    }

    fn put_now(m: &sled::Tree, p: &sled::Tree, key: &[u8], v: &[u8]) {
        (m, p).transaction(|(m, p)| put(m, p, b'c', key, v)).unwrap();
    }

    fn get(m: &sled::Tree, p: &sled::Tree, key: &[u8]) -> Option<Vec<u8>> {
        m.get(key).unwrap().map(|v| read(p, b'c', key, v).unwrap())
    }

    #[test]
    fn values_of_every_length_round_trip_and_shrink_cleanly() {
        let (_db, m, p) = db();
        for len in [0, 1, PART - 1, PART, PART + 1, 3 * PART, 100_000, 7] {
            let v: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            put_now(&m, &p, b"k", &v);
            assert_eq!(get(&m, &p, b"k").unwrap(), v, "length {len}");
            assert_eq!(p.len(), len.div_ceil(PART) * usize::from(len > PART), "no stale parts after length {len}");
            assert!(m.iter().values().chain(p.iter().values()).all(|v| v.unwrap().len() <= PART));
        }
        // A value that starts like a header is stored as parts, not mistaken.
        put_now(&m, &p, b"k", &[HEADER, 0, 0, 0, 0]);
        assert_eq!(get(&m, &p, b"k").unwrap(), vec![HEADER, 0, 0, 0, 0]);
        (&m, &p).transaction(|(m, p)| remove(m, p, b'c', b"k")).unwrap();
        assert!(m.is_empty() && p.is_empty());
    }

    #[test]
    fn a_missing_part_is_reported() {
        let (_db, m, p) = db();
        put_now(&m, &p, b"k", &vec![1; 3 * PART]);
        p.remove(part_key(b'c', b"k", 1)).unwrap();
        let err = read(&p, b'c', b"k", m.get(b"k").unwrap().unwrap()).unwrap_err();
        assert!(err.to_string().contains("part 1 of 3 is missing"), "{err}");
    }
}
