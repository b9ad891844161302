//! Manifest.mbdb, the file list of backups made by iOS 9 and earlier. Only the
//! record count and the files' sizes are needed, so records are walked and
//! checked, never kept.

use thiserror::Error;

const MAGIC: &[u8] = b"mbdb\x05\x00";

/// What the records of one Manifest.mbdb add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MbdbSummary {
    /// Every record: files, folders and symlinks.
    pub records: u64,
    /// Records whose mode says regular file.
    pub files: u64,
    /// The sum of the regular files' sizes.
    pub file_bytes: u64,
}

/// Why a Manifest.mbdb could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MbdbError {
    /// The file does not start with `mbdb\x05\x00`.
    #[error("it does not start with the Manifest.mbdb signature")]
    BadMagic,
    /// A record runs past the end of the file.
    #[error("record {record} is cut off at byte {offset}: the file is truncated")]
    Truncated { record: u64, offset: usize },
}

/// Walks every record of a Manifest.mbdb.
pub fn summarize(bytes: &[u8]) -> Result<MbdbSummary, MbdbError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(MbdbError::BadMagic)?;
    let mut reader = Reader {
        bytes: rest,
        pos: 0,
        base: MAGIC.len(),
    };
    let mut summary = MbdbSummary::default();
    while !reader.at_end() {
        let record = summary.records;
        let truncated = |offset| MbdbError::Truncated { record, offset };
        let (mode, size) = reader.record().map_err(truncated)?;
        summary.records += 1;
        if mode & 0xF000 == 0x8000 {
            summary.files += 1;
            summary.file_bytes = summary.file_bytes.saturating_add(size);
        }
    }
    Ok(summary)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Bytes before `bytes` in the file, so offsets in errors are file offsets.
    base: usize,
}

impl Reader<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Reads one record and returns its mode and size; on a short read, the
    /// file offset where the data ran out.
    fn record(&mut self) -> Result<(u16, u64), usize> {
        for _ in 0..5 {
            // domain, path, link target, data hash, encryption key
            self.string()?;
        }
        let mode = u16::from_be_bytes(self.take::<2>()?);
        self.take::<8>()?; // inode
        self.take::<4>()?; // uid
        self.take::<4>()?; // gid
        self.take::<12>()?; // mtime, atime, ctime
        let size = u64::from_be_bytes(self.take::<8>()?);
        self.take::<1>()?; // protection class
        let [properties] = self.take::<1>()?;
        for _ in 0..properties {
            self.string()?;
            self.string()?;
        }
        Ok((mode, size))
    }

    /// A string is a big-endian u16 length then that many bytes; 0xFFFF is
    /// the empty (null) string with no bytes after it.
    fn string(&mut self) -> Result<(), usize> {
        let len = u16::from_be_bytes(self.take::<2>()?);
        if len != 0xFFFF {
            self.skip(usize::from(len))?;
        }
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], usize> {
        let start = self.pos;
        self.skip(N)?;
        let mut out = [0; N];
        out.copy_from_slice(&self.bytes[start..self.pos]);
        Ok(out)
    }

    fn skip(&mut self, n: usize) -> Result<(), usize> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.bytes.len() => {
                self.pos = end;
                Ok(())
            }
            _ => Err(self.base + self.bytes.len()),
        }
    }
}

/// Writes a Manifest.mbdb with one record per `(path, mode, size)`, for tests
/// and the synthetic backups.
pub fn encode(records: &[(&str, u16, u64)]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let string = |out: &mut Vec<u8>, s: Option<&str>| match s {
        None => out.extend_from_slice(&0xFFFFu16.to_be_bytes()),
        Some(s) => {
            let len = u16::try_from(s.len()).expect("mbdb strings are shorter than 64 KiB");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    };
    for (path, mode, size) in records {
        string(&mut out, Some("HomeDomain"));
        string(&mut out, Some(path));
        string(&mut out, None);
        string(&mut out, None);
        string(&mut out, None);
        out.extend_from_slice(&mode.to_be_bytes());
        out.extend_from_slice(&[0; 8 + 4 + 4 + 12]);
        out.extend_from_slice(&size.to_be_bytes());
        out.push(0);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_records_and_files() {
        let bytes = encode(&[
            ("Library", 0o040755, 0),
            ("Library/a.plist", 0o100644, 10),
            ("Library/b.db", 0o100644, 32),
            ("Library/link", 0o120755, 0),
        ]);
        let summary = summarize(&bytes).unwrap();
        assert_eq!(
            summary,
            MbdbSummary {
                records: 4,
                files: 2,
                file_bytes: 42
            }
        );
    }

    #[test]
    fn empty_database_has_no_records() {
        assert_eq!(summarize(MAGIC).unwrap(), MbdbSummary::default());
    }

    #[test]
    fn truncation_names_the_record() {
        let bytes = encode(&[("a", 0o100644, 1), ("b", 0o100644, 2)]);
        let err = summarize(&bytes[..bytes.len() - 3]).unwrap_err();
        assert_eq!(
            err,
            MbdbError::Truncated {
                record: 1,
                offset: bytes.len() - 3
            }
        );
        assert_eq!(summarize(b"mbdx\x05\x00"), Err(MbdbError::BadMagic));
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn arbitrary_records_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let mut bytes = MAGIC.to_vec();
                bytes.extend(tail);
                let _ = summarize(&bytes);
            }

            #[test]
            fn encoded_records_round_trip(
                records in proptest::collection::vec(("[a-z/]{0,40}", any::<u16>(), any::<u32>()), 0..50)
            ) {
                let list: Vec<(&str, u16, u64)> =
                    records.iter().map(|(p, m, s)| (p.as_str(), *m, u64::from(*s))).collect();
                let summary = summarize(&encode(&list)).unwrap();
                prop_assert_eq!(summary.records, list.len() as u64);
                let files = list.iter().filter(|r| r.1 & 0xF000 == 0x8000).count() as u64;
                prop_assert_eq!(summary.files, files);
            }

            #[test]
            fn every_truncation_is_an_error_not_a_panic(cut in 1usize..200) {
                let bytes = encode(&[("Library/a", 0o100644, 3), ("Library/b", 0o100644, 4)]);
                // Both records have the same length; cutting exactly one off
                // leaves a valid one-record file.
                let record = (bytes.len() - MAGIC.len()) / 2;
                let cut = cut % (bytes.len() - MAGIC.len());
                let result = summarize(&bytes[..bytes.len() - cut]);
                match cut {
                    0 => prop_assert_eq!(result.unwrap().records, 2),
                    c if c == record => prop_assert_eq!(result.unwrap().records, 1),
                    _ => prop_assert!(result.is_err()),
                }
            }
        }
    }
}
