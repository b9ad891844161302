//! Bounded plist parsing. Every plist Unstuck reads — the metadata files of a
//! backup folder, a message from a phone or from the host — is measured here
//! against a [`Budget`] (bytes, values, nesting) before the `plist` crate
//! builds a `Value` from it. The crate expands every shared reference of a
//! binary plist and frees deep values recursively, so a few hundred hostile
//! bytes could otherwise exhaust memory or the stack. Interpreting the value
//! is left to the callers.

use std::fmt;
use std::fs;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

use plist::Value;

/// How much of a plist Unstuck accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The encoded plist's length; also the bound on its strings and data
    /// once shared references are expanded.
    pub bytes: usize,
    /// Values, dictionary keys included, each shared reference counted every
    /// time it is used.
    pub elements: u64,
    /// Arrays and dictionaries nested inside each other, the top one included.
    pub depth: usize,
}

impl Budget {
    /// Metadata files in a backup folder (Info/Status/Manifest.plist).
    /// Info.plist carries an icon and iTunes metadata per app, so a phone
    /// with hundreds of apps writes tens of megabytes; the byte bound is
    /// generous and the value count is what stops a hostile file.
    pub const FILE: Budget = Budget {
        bytes: 64 * MIB,
        elements: 1_000_000,
        depth: 64,
    };

    /// One DeviceLink / lockdownd message from a phone or a host.
    pub const MESSAGE: Budget = Budget {
        bytes: 64 * MIB,
        elements: 4_000_000,
        depth: 64,
    };
}

const MIB: usize = 1024 * 1024;

/// Why a plist was not parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlistError {
    /// The encoded plist is longer than the budget.
    #[error("the plist is {}, more than the {} Unstuck reads", size(*len), size(*limit as u64))]
    TooLarge { len: u64, limit: usize },
    /// Strings and data, each counted every time a shared reference uses
    /// it, come to more than the budget's bytes.
    #[error(
        "the plist's strings and data come to more than {} (shared references counted each time they are used)",
        size(*limit as u64)
    )]
    TooLargeExpanded { limit: usize },
    /// More values than the budget, with shared references expanded.
    #[error(
        "the plist holds more than {limit} values (shared references counted each time they are used)"
    )]
    TooManyElements { limit: u64 },
    /// Arrays and dictionaries nested deeper than the budget.
    #[error("the plist nests deeper than {limit} levels")]
    TooDeep { limit: usize },
    /// A binary plist's array or dictionary contains itself.
    #[error("the plist contains itself (object {object} refers back to itself)")]
    Cycle { object: u64 },
    /// Not a plist, or a damaged one; the text says what is wrong.
    #[error("{0}")]
    Malformed(String),
}

/// Why a plist file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    Io { path: PathBuf, source: io::Error },
    /// The path names a folder, a device, a pipe or a socket (perhaps through
    /// a symlink): nothing Apple's tools write, and reading a device or a
    /// pipe may never end.
    NotAFile { path: PathBuf, what: &'static str },
    /// The file is longer than the bound.
    TooLarge {
        path: PathBuf,
        len: u64,
        limit: usize,
    },
    /// The bytes are not a plist within the budget.
    Plist { path: PathBuf, source: PlistError },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io { path, source } => {
                write!(f, "{} cannot be read: {source}", path.display())
            }
            ReadError::NotAFile { path, what } => {
                write!(f, "{} is {what} where a file should be", path.display())
            }
            ReadError::TooLarge { path, len, limit } => write!(
                f,
                "{} is refused: it is {}, more than the {} Unstuck reads; Apple's tools do not write such a file",
                path.display(),
                size(*len),
                size(*limit as u64)
            ),
            ReadError::Plist {
                path,
                source: source @ PlistError::Malformed(_),
            } => write!(f, "{} is not a valid plist: {source}", path.display()),
            ReadError::Plist { path, source } => write!(
                f,
                "{} is refused: {source}; Apple's tools do not write such a file",
                path.display()
            ),
        }
    }
}

impl ReadError {
    /// The file that could not be read.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Io { path, .. }
            | ReadError::NotAFile { path, .. }
            | ReadError::TooLarge { path, .. }
            | ReadError::Plist { path, .. } => path,
        }
    }
}

/// Parses XML or binary plist bytes, refusing before the `plist` crate sees
/// them anything over budget. Shared references in a binary plist count as
/// expanded (each use counts); cycles are refused.
pub fn parse(bytes: &[u8], budget: Budget) -> Result<Value, PlistError> {
    measure(bytes, budget)?;
    let parsed = if bytes.starts_with(BINARY_MAGIC) {
        Value::from_reader(Cursor::new(bytes))
    } else {
        // Not `from_reader`: it falls back to the OpenStep text format, which
        // `measure` does not measure and no backup uses.
        Value::from_reader_xml(bytes)
    };
    parsed.map_err(|e| PlistError::Malformed(format!("not a plist: {e}")))
}

/// Checks plist bytes against `budget` without building anything: what
/// [`parse`] does before it hands them to the `plist` crate. For bytes that
/// another parser (idevice's) will read.
pub fn measure(bytes: &[u8], budget: Budget) -> Result<(), PlistError> {
    if bytes.len() > budget.bytes {
        return Err(PlistError::TooLarge {
            len: bytes.len() as u64,
            limit: budget.bytes,
        });
    }
    if bytes.starts_with(BINARY_MAGIC) {
        measure_binary(bytes, budget)
    } else {
        measure_xml(bytes, budget)
    }
}

/// Reads the regular file at `path` — a symlink is followed, but what it
/// leads to must be a regular file too — of at most `budget.bytes`, and
/// parses it.
pub fn read_file(path: &Path, budget: Budget) -> Result<Value, ReadError> {
    let bytes = read_capped(path, budget.bytes)?;
    parse(&bytes, budget).map_err(|source| ReadError::Plist {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads the regular file at `path` whole if it is at most `limit` bytes.
/// The bound is enforced while reading, so a file that grows meanwhile (or
/// lies about its length) cannot make Unstuck read more.
pub fn read_capped(path: &Path, limit: usize) -> Result<Vec<u8>, ReadError> {
    let file =
        crate::regular_file::open(path, crate::regular_file::Links::Follow).map_err(|source| {
            match fs::metadata(path) {
                Ok(meta) if !meta.is_file() => ReadError::NotAFile {
                    path: path.to_path_buf(),
                    what: crate::regular_file::describe(&meta.file_type()),
                },
                _ => ReadError::Io {
                    path: path.to_path_buf(),
                    source,
                },
            }
        })?;
    let claimed = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() > limit {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            len: claimed.max(bytes.len() as u64),
            limit,
        });
    }
    Ok(bytes)
}

/// "512 bytes", "64 MiB", "64.1 MiB": a whole number of MiB when it is one,
/// otherwise rounded up, so a length just over a bound never reads as equal.
fn size(n: u64) -> String {
    const M: u64 = MIB as u64;
    if n < M {
        format!("{n} bytes")
    } else if n.is_multiple_of(M) {
        format!("{} MiB", n / M)
    } else {
        let tenths = n.div_ceil(M / 10);
        format!("{}.{} MiB", tenths / 10, tenths % 10)
    }
}

const BINARY_MAGIC: &[u8] = b"bplist00";
const TRAILER_LEN: usize = 32;

/// One count that must stay within a bound, stopping at the first excess.
fn within(n: u64, limit: u64, error: impl FnOnce() -> PlistError) -> Result<u64, PlistError> {
    if n > limit { Err(error()) } else { Ok(n) }
}

/// What the walk knows about one object of a binary plist.
#[derive(Debug, Clone, Copy)]
enum Seen {
    Unvisited,
    /// On the walk's current path: meeting it again is a cycle.
    Open,
    /// Values (itself included), string and data bytes, and containers
    /// nested (itself included), all expanded.
    Done {
        elements: u64,
        bytes: u64,
        height: usize,
    },
}

/// A container on the walk's path: where its references are and how far
/// through them the walk is, with the totals of the children done so far.
struct Frame {
    object: usize,
    refs_at: usize,
    refs: usize,
    next: usize,
    elements: u64,
    bytes: u64,
    height: usize,
}

/// An object's kind as far as the budget cares.
enum Shape {
    /// A leaf holding `bytes` of string or data (0 for numbers, dates, ...).
    Leaf { bytes: u64 },
    /// An array or dictionary: `refs` references starting at `refs_at`.
    Container { refs_at: usize, refs: usize },
}

/// The fixed fields at the end of a binary plist.
struct Trailer {
    offset_size: usize,
    ref_size: usize,
    objects: usize,
    top: usize,
    table_at: usize,
}

/// Checks a binary plist's header and trailer, then walks its object graph
/// from the top object, counting values, string and data bytes and nesting
/// as the `plist` crate would expand them. Each object is measured once
/// (memoized), so the walk costs no more than the file's references; it
/// keeps its own stack, never deeper than `budget.depth`.
fn measure_binary(bytes: &[u8], budget: Budget) -> Result<(), PlistError> {
    let t = trailer(bytes, budget)?;
    let end = bytes.len() - TRAILER_LEN;
    let max_bytes = budget.bytes as u64;
    let mut seen = vec![Seen::Unvisited; t.objects];
    let mut path: Vec<Frame> = Vec::new();
    // The totals of the object just finished, to add to its parent.
    let mut finished: Option<(u64, u64, usize)> = None;
    let mut next_object = Some(t.top);

    loop {
        if let Some(object) = next_object.take() {
            match seen[object] {
                Seen::Done {
                    elements,
                    bytes,
                    height,
                } => finished = Some((elements, bytes, height)),
                Seen::Open => {
                    return Err(PlistError::Cycle {
                        object: object as u64,
                    });
                }
                Seen::Unvisited => {
                    let at = read_uint(bytes, t.table_at + object * t.offset_size, t.offset_size)
                        .and_then(|at| usize::try_from(at).ok())
                        .filter(|at| (BINARY_MAGIC.len()..t.table_at).contains(at))
                        .ok_or_else(|| {
                            damaged(format!("object {object}'s offset is out of range"))
                        })?;
                    match shape(bytes, at, end, t.ref_size)? {
                        Shape::Leaf { bytes: n } => {
                            within(n, max_bytes, || PlistError::TooLargeExpanded {
                                limit: budget.bytes,
                            })?;
                            let done = (1, n, 0);
                            seen[object] = Seen::Done {
                                elements: 1,
                                bytes: n,
                                height: 0,
                            };
                            finished = Some(done);
                        }
                        Shape::Container { refs_at, refs } => {
                            if path.len() >= budget.depth {
                                return Err(PlistError::TooDeep {
                                    limit: budget.depth,
                                });
                            }
                            seen[object] = Seen::Open;
                            path.push(Frame {
                                object,
                                refs_at,
                                refs,
                                next: 0,
                                elements: 1,
                                bytes: 0,
                                height: 1,
                            });
                        }
                    }
                }
            }
        }

        let Some(frame) = path.last_mut() else {
            return Ok(());
        };
        if let Some((elements, n, height)) = finished.take() {
            frame.elements = within(
                frame.elements.saturating_add(elements),
                budget.elements,
                || PlistError::TooManyElements {
                    limit: budget.elements,
                },
            )?;
            frame.bytes = within(frame.bytes.saturating_add(n), max_bytes, || {
                PlistError::TooLargeExpanded {
                    limit: budget.bytes,
                }
            })?;
            frame.height = frame.height.max(height + 1);
            if frame.height > budget.depth {
                return Err(PlistError::TooDeep {
                    limit: budget.depth,
                });
            }
        }
        if frame.next < frame.refs {
            let child = read_uint(bytes, frame.refs_at + frame.next * t.ref_size, t.ref_size)
                .and_then(|r| usize::try_from(r).ok())
                .filter(|&r| r < t.objects)
                .ok_or_else(|| {
                    damaged(format!(
                        "object {} refers to an object that does not exist",
                        frame.object
                    ))
                })?;
            frame.next += 1;
            next_object = Some(child);
        } else {
            let done = (frame.elements, frame.bytes, frame.height);
            seen[frame.object] = Seen::Done {
                elements: done.0,
                bytes: done.1,
                height: done.2,
            };
            path.pop();
            finished = Some(done);
            if path.is_empty() {
                return Ok(());
            }
        }
    }
}

fn damaged(why: String) -> PlistError {
    PlistError::Malformed(format!("the binary plist is damaged: {why}"))
}

/// Reads and checks the trailer: field sizes the `plist` crate knows, an
/// offset table that lies between the header and the trailer, a top object
/// that exists. An object table larger than the value budget is refused
/// here: the crate allocates per object in the table, and a plist that
/// Apple's tools write refers to every object it holds.
fn trailer(bytes: &[u8], budget: Budget) -> Result<Trailer, PlistError> {
    if bytes.len() < BINARY_MAGIC.len() + 1 + TRAILER_LEN {
        return Err(damaged("it is shorter than its header and trailer".into()));
    }
    let end = bytes.len() - TRAILER_LEN;
    let field = |at: usize| read_uint(bytes, end + at, 8).unwrap_or(u64::MAX);
    let offset_size = usize::from(bytes[end + 6]);
    let ref_size = usize::from(bytes[end + 7]);
    for (name, n) in [("offset", offset_size), ("reference", ref_size)] {
        if !matches!(n, 1 | 2 | 3 | 4 | 8) {
            return Err(damaged(format!("its {name} size is {n} bytes")));
        }
    }
    let (objects, top, table_at) = (field(8), field(16), field(24));
    within(objects, budget.elements, || PlistError::TooManyElements {
        limit: budget.elements,
    })?;
    // Both fit in usize now: `objects` is within the budget and `table_at`
    // is checked against the length.
    let objects = objects as usize;
    if objects == 0 || top >= objects as u64 {
        return Err(damaged(format!(
            "its top object {top} is not one of its {objects} objects"
        )));
    }
    let table_fits = usize::try_from(table_at)
        .ok()
        .filter(|&at| at > BINARY_MAGIC.len())
        .and_then(|at| at.checked_add(objects.checked_mul(offset_size)?))
        .is_some_and(|table_end| table_end <= end);
    if !table_fits {
        return Err(damaged("its offset table is out of range".into()));
    }
    Ok(Trailer {
        offset_size,
        ref_size,
        objects,
        top: top as usize,
        table_at: table_at as usize,
    })
}

/// The object at `at`, as far as the budget cares; its contents must end
/// before the trailer (`end`).
fn shape(bytes: &[u8], at: usize, end: usize, ref_size: usize) -> Result<Shape, PlistError> {
    let marker = bytes[at];
    let (kind, low) = (marker >> 4, marker & 0x0f);
    // (bytes per unit of length, units are references)
    let unit = match kind {
        0x4 | 0x5 => (1, false),
        0x6 => (2, false),
        0xa => (ref_size, true),
        0xd => (2 * ref_size, true),
        // Numbers, dates, booleans, UIDs; the crate checks their own bytes.
        _ => return Ok(Shape::Leaf { bytes: 0 }),
    };
    let (len, body_at) = object_len(bytes, at, low, end)?;
    let body_len = usize::try_from(len)
        .ok()
        .and_then(|len| len.checked_mul(unit.0))
        .filter(|&n| {
            body_at
                .checked_add(n)
                .is_some_and(|body_end| body_end <= end)
        })
        .ok_or_else(|| damaged(format!("the object at byte {at} runs past its end")))?;
    Ok(if unit.1 {
        Shape::Container {
            refs_at: body_at,
            refs: body_len / ref_size,
        }
    } else {
        Shape::Leaf {
            bytes: body_len as u64,
        }
    })
}

/// An object's length — in its marker, or (marker 0xF) in the integer that
/// follows, whose size the `plist` crate takes from its low two bits — and
/// where its contents start.
fn object_len(bytes: &[u8], at: usize, low: u8, end: usize) -> Result<(u64, usize), PlistError> {
    if low != 0x0f {
        return Ok((u64::from(low), at + 1));
    }
    let past = || {
        damaged(format!(
            "the length of the object at byte {at} runs past its end"
        ))
    };
    let size_marker = *bytes
        .get(at + 1)
        .filter(|_| at + 1 < end)
        .ok_or_else(past)?;
    let size = 1usize << (size_marker & 0x03);
    let len_at = at + 2;
    if len_at + size > end {
        return Err(past());
    }
    let len = read_uint(bytes, len_at, size).ok_or_else(past)?;
    Ok((len, len_at + size))
}

/// A big-endian unsigned integer of `size` (1 to 8) bytes at `at`.
fn read_uint(bytes: &[u8], at: usize, size: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(size)?)?;
    Some(field.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
}

/// One linear pass over an XML plist: counts elements (every start tag but
/// `<plist>`, keys included) and the nesting of `<array>` and `<dict>`
/// (`<array/>` and `<dict/>` count as a level but hold nothing deeper). Comments, CDATA, processing
/// instructions and the DOCTYPE are passed over. Anything it cannot make
/// sense of is left for the XML parser to reject.
fn measure_xml(bytes: &[u8], budget: Budget) -> Result<(), PlistError> {
    let mut elements: u64 = 0;
    let mut depth: usize = 0;
    let mut i = 0;
    while let Some(found) = find(bytes, i, b"<") {
        let rest = &bytes[found..];
        let skip_to =
            |close: &[u8], from: usize| find(bytes, found + from, close).map(|p| p + close.len());
        let next = if rest.starts_with(b"<!--") {
            skip_to(b"-->", 4)
        } else if rest.starts_with(b"<![CDATA[") {
            skip_to(b"]]>", 9)
        } else if rest.starts_with(b"<?") {
            skip_to(b"?>", 2)
        } else if rest.starts_with(b"<!") {
            skip_to(b">", 2)
        } else if let Some(name_and_tail) = rest.strip_prefix(b"</") {
            if is_container(tag_name(name_and_tail)) {
                depth = depth.saturating_sub(1);
            }
            skip_to(b">", 2)
        } else {
            let name = tag_name(&rest[1..]);
            let Some(close) = tag_end(bytes, found + 1) else {
                break;
            };
            if name != b"plist" {
                elements += 1;
                within(elements, budget.elements, || PlistError::TooManyElements {
                    limit: budget.elements,
                })?;
            }
            if is_container(name) {
                // An empty `<array/>` is a level, as in a binary plist, but
                // nothing inside it can nest deeper.
                if depth + 1 > budget.depth {
                    return Err(PlistError::TooDeep {
                        limit: budget.depth,
                    });
                }
                if bytes[close - 1] != b'/' {
                    depth += 1;
                }
            }
            Some(close + 1)
        };
        let Some(next) = next else {
            break;
        };
        i = next;
    }
    Ok(())
}

fn is_container(name: &[u8]) -> bool {
    name == b"array" || name == b"dict"
}

/// The name at the start of a tag's text, up to a space, `/` or `>`.
fn tag_name(text: &[u8]) -> &[u8] {
    let n = text
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'/' || b == b'>')
        .unwrap_or(text.len());
    &text[..n]
}

/// The index of the `>` that ends the start tag whose text begins at `from`,
/// passing over quoted attribute values.
fn tag_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// Where `needle` next occurs in `bytes` at or after `from`.
fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, Instant, SystemTime};

    use plist::Dictionary;

    use super::*;

    /// What `parse` must do with some bytes.
    enum Expect {
        /// Give what the `plist` crate gives on its own.
        Same,
        /// Refuse, with this text in the message.
        Refused(&'static str),
    }

    fn check(bytes: &[u8], budget: Budget, expect: Expect) {
        let got = parse(bytes, budget);
        match expect {
            Expect::Same => {
                let theirs = Value::from_reader(Cursor::new(bytes)).expect("plist parses it");
                assert_eq!(got.expect("within the budget"), theirs);
            }
            Expect::Refused(text) => {
                let err = got.expect_err("over the budget").to_string();
                assert!(err.contains(text), "{err:?} does not say {text:?}");
            }
        }
    }

    /// An object of a hand-made binary plist; references are indices.
    #[derive(Debug, Clone)]
    pub(crate) enum Obj {
        Int(u8),
        Str(String),
        Array(Vec<usize>),
        Dict(Vec<(usize, usize)>),
    }

    fn marker(kind: u8, len: usize, out: &mut Vec<u8>) {
        if len < 15 {
            out.push(kind << 4 | len as u8);
        } else {
            out.push(kind << 4 | 0x0f);
            out.push(0x13);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }

    /// A binary plist of `objects` whose top object is `top`, written the
    /// way CFBinaryPList lays it out (4-byte offsets, `ref_size` references).
    pub(crate) fn binary(objects: &[Obj], top: usize, ref_size: usize) -> Vec<u8> {
        let mut out = BINARY_MAGIC.to_vec();
        let mut offsets = Vec::new();
        let put_ref = |r: usize, out: &mut Vec<u8>| {
            out.extend_from_slice(&(r as u64).to_be_bytes()[8 - ref_size..]);
        };
        for obj in objects {
            offsets.push(out.len() as u32);
            match obj {
                Obj::Int(n) => out.extend_from_slice(&[0x10, *n]),
                Obj::Str(s) => {
                    marker(0x5, s.len(), &mut out);
                    out.extend_from_slice(s.as_bytes());
                }
                Obj::Array(refs) => {
                    marker(0xa, refs.len(), &mut out);
                    refs.iter().for_each(|&r| put_ref(r, &mut out));
                }
                Obj::Dict(pairs) => {
                    marker(0xd, pairs.len(), &mut out);
                    pairs.iter().for_each(|&(k, _)| put_ref(k, &mut out));
                    pairs.iter().for_each(|&(_, v)| put_ref(v, &mut out));
                }
            }
        }
        let table_at = out.len() as u64;
        offsets
            .iter()
            .for_each(|o| out.extend_from_slice(&o.to_be_bytes()));
        out.extend_from_slice(&[0; 6]);
        out.extend_from_slice(&[4, ref_size as u8]);
        for n in [objects.len() as u64, top as u64, table_at] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out
    }

    /// A string, then `levels` arrays, each listing the one before `fan` times.
    pub(crate) fn laughs(levels: usize, fan: usize) -> Vec<u8> {
        let mut objects = vec![Obj::Str("lol".into())];
        objects.extend((0..levels).map(|k| Obj::Array(vec![k; fan])));
        binary(&objects, levels, 1)
    }

    fn nested_binary(levels: usize) -> Vec<u8> {
        let mut objects = vec![Obj::Int(1)];
        objects.extend((0..levels).map(|k| Obj::Array(vec![k])));
        binary(&objects, levels, 4)
    }

    fn nested_xml(levels: usize) -> Vec<u8> {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0">{}<true/>{}</plist>"#,
            "<array>".repeat(levels),
            "</array>".repeat(levels)
        )
        .into_bytes()
    }

    fn budget(elements: u64, depth: usize) -> Budget {
        Budget {
            elements,
            depth,
            ..Budget::MESSAGE
        }
    }

    fn sample() -> Value {
        let mut lockdown = Dictionary::new();
        lockdown.insert("ProductVersion".into(), "18.1".into());
        let mut d = Dictionary::new();
        d.insert("SnapshotState".into(), "finished".into());
        d.insert("IsFullBackup".into(), true.into());
        d.insert("Size".into(), 1234567u64.into());
        d.insert("Ratio".into(), 0.25.into());
        d.insert("Icon".into(), Value::Data(vec![0x89, b'P', b'N', b'G']));
        d.insert(
            "Date".into(),
            Value::Date((SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)).into()),
        );
        d.insert("Name".into(), "Ann’s iPhone ✓".into());
        d.insert("Lockdown".into(), Value::Dictionary(lockdown));
        d.insert("Empty".into(), Value::Array(vec![]));
        Value::Dictionary(d)
    }

    fn encoded(value: &Value) -> [Vec<u8>; 2] {
        let (mut xml, mut bin) = (Vec::new(), Vec::new());
        value.to_writer_xml(&mut xml).unwrap();
        value.to_writer_binary(&mut bin).unwrap();
        [xml, bin]
    }

    #[test]
    fn ordinary_plists_parse_as_plist_parses_them() {
        for bytes in encoded(&sample()) {
            check(&bytes, Budget::FILE, Expect::Same);
        }
        // Shared references within the budget are fine: 3^5 strings.
        check(&laughs(5, 3), Budget::FILE, Expect::Same);
        check(
            &binary(
                &[
                    Obj::Str("k".into()),
                    Obj::Int(7),
                    Obj::Dict(vec![(0, 1)]),
                    Obj::Array(vec![2, 2, 1]),
                ],
                3,
                1,
            ),
            Budget::FILE,
            Expect::Same,
        );
    }

    #[test]
    fn billion_laughs_is_refused_fast() {
        let bytes = laughs(30, 4);
        assert!(bytes.len() < 350, "{} bytes", bytes.len());
        let started = Instant::now();
        check(
            &bytes,
            Budget::FILE,
            Expect::Refused("more than 1000000 values (shared references counted each time"),
        );
        // Expanded, it is 4^30 values; the walk visits each object once.
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn shared_strings_count_their_bytes_each_time() {
        let big = "x".repeat(1000);
        let objects = [Obj::Str(big), Obj::Array(vec![0; 100])];
        let bytes = binary(&objects, 1, 1);
        let tight = Budget {
            bytes: 50_000,
            ..Budget::FILE
        };
        check(
            &bytes,
            tight,
            Expect::Refused("strings and data come to more than 50000 bytes"),
        );
        check(&bytes, Budget::FILE, Expect::Same);
    }

    #[test]
    fn element_bound_is_exact() {
        // An array of 3 strings: 4 values.
        let objects = [Obj::Str("a".into()), Obj::Array(vec![0, 0, 0])];
        check(&binary(&objects, 1, 1), budget(4, 64), Expect::Same);
        check(
            &binary(&objects, 1, 1),
            budget(3, 64),
            Expect::Refused("more than 3 values"),
        );
        let xml = br#"<plist version="1.0"><array><string>a</string><string>a</string><string>a</string></array></plist>"#;
        check(xml, budget(4, 64), Expect::Same);
        check(xml, budget(3, 64), Expect::Refused("more than 3 values"));
    }

    #[test]
    fn too_many_xml_values_are_refused() {
        let bytes = format!(
            r#"<plist version="1.0"><array>{}</array></plist>"#,
            "<true/>".repeat(1_000_001)
        );
        check(
            bytes.as_bytes(),
            Budget::FILE,
            Expect::Refused("more than 1000000 values"),
        );
    }

    #[test]
    fn nesting_bound_is_exact_in_both_formats() {
        check(&nested_binary(64), Budget::FILE, Expect::Same);
        check(
            &nested_binary(65),
            Budget::FILE,
            Expect::Refused("nests deeper than 64 levels"),
        );
        check(&nested_xml(64), Budget::FILE, Expect::Same);
        check(
            &nested_xml(65),
            Budget::FILE,
            Expect::Refused("nests deeper than 64 levels"),
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        check(
            &nested_xml(200_000),
            Budget::FILE,
            Expect::Refused("nests deeper than 64 levels"),
        );
        check(
            &nested_binary(200_000),
            Budget::FILE,
            Expect::Refused("nests deeper than 64 levels"),
        );
        // A deep chain reached through a shallow one that was measured first.
        let mut objects = vec![Obj::Int(1)];
        objects.extend((0..60).map(|k| Obj::Array(vec![k])));
        let deep = objects.len() - 1;
        objects.extend((0..10).map(|k| Obj::Array(vec![if k == 0 { deep } else { deep + k }])));
        let top = objects.len();
        objects.push(Obj::Array(vec![deep, top - 1]));
        check(
            &binary(&objects, top, 2),
            Budget::FILE,
            Expect::Refused("nests deeper than 64 levels"),
        );
    }

    #[test]
    fn self_closing_containers_do_not_nest() {
        let bytes = format!(
            r#"<plist version="1.0"><array>{}<dict /></array></plist>"#,
            "<array/>".repeat(100)
        );
        check(bytes.as_bytes(), budget(1000, 2), Expect::Same);
        check(
            bytes.as_bytes(),
            budget(1000, 1),
            Expect::Refused("nests deeper than 1 levels"),
        );
    }

    #[test]
    fn xml_comments_and_doctype_are_not_counted() {
        let bytes = br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><!-- <array><array><array> --><array><string><![CDATA[<array>]]></string></array></plist>"#;
        check(bytes, budget(2, 1), Expect::Same);
    }

    #[test]
    fn cycles_are_refused() {
        check(
            &binary(&[Obj::Array(vec![1]), Obj::Array(vec![0])], 0, 1),
            Budget::FILE,
            Expect::Refused("contains itself"),
        );
        check(
            &binary(&[Obj::Int(0), Obj::Array(vec![0, 1])], 1, 1),
            Budget::FILE,
            Expect::Refused("contains itself"),
        );
        let key = Obj::Str("k".into());
        check(
            &binary(&[key, Obj::Dict(vec![(0, 1)])], 1, 1),
            Budget::FILE,
            Expect::Refused("contains itself"),
        );
    }

    #[test]
    fn damaged_binary_plists_are_refused() {
        let good = laughs(2, 2);
        let end = good.len() - TRAILER_LEN;
        let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
        let mut top_out = good.clone();
        top_out[end + 16..end + 24].copy_from_slice(&9u64.to_be_bytes());
        cases.push((top_out, "top object 9"));
        let mut table_out = good.clone();
        table_out[end + 24..end + 32].copy_from_slice(&u64::MAX.to_be_bytes());
        cases.push((table_out, "offset table is out of range"));
        let mut ref_size = good.clone();
        ref_size[end + 7] = 5;
        cases.push((ref_size, "reference size is 5 bytes"));
        let mut many = good.clone();
        many[end + 8..end + 16].copy_from_slice(&u64::MAX.to_be_bytes());
        cases.push((many, "more than 1000000 values"));
        let dangling = binary(&[Obj::Array(vec![7])], 0, 1);
        cases.push((dangling, "refers to an object that does not exist"));
        let mut long = binary(&[Obj::Str("x".repeat(20))], 0, 1);
        long[8 + 2..8 + 10].copy_from_slice(&1_000_000u64.to_be_bytes());
        cases.push((long, "runs past its end"));
        cases.push((b"bplist00".to_vec(), "shorter than its header"));
        for (bytes, text) in cases {
            check(&bytes, Budget::FILE, Expect::Refused(text));
        }
    }

    #[test]
    fn oversized_bytes_are_refused_before_parsing() {
        let bytes = encoded(&sample()).concat();
        let tight = Budget {
            bytes: 10,
            ..Budget::FILE
        };
        let text = format!("the plist is {} bytes, more than the 10 bytes", bytes.len());
        let err = parse(&bytes, tight).unwrap_err().to_string();
        assert!(err.contains(&text), "{err}");
        assert_eq!(size(64 * MIB as u64), "64 MiB");
        assert_eq!(size(64 * MIB as u64 + 1), "64.1 MiB");
    }

    #[test]
    fn openstep_text_plists_are_not_parsed() {
        // `from_reader` would read this; the budget measures XML only.
        assert!(parse(b"( ( ( 1 ) ) )", Budget::FILE).is_err());
    }

    #[test]
    fn real_plists_parse_as_plist_parses_them() {
        let dir = std::env::var_os("UNSTUCK_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
        if !dir.join("backups").is_dir() {
            eprintln!("SKIPPED real_plists_parse_as_plist_parses_them: no fixtures");
            return;
        }
        let mut seen = 0;
        for entry in walkdir::WalkDir::new(dir.join("backups"))
            .into_iter()
            .flatten()
        {
            if entry.path().extension().is_some_and(|e| e == "plist") {
                check(&fs::read(entry.path()).unwrap(), Budget::FILE, Expect::Same);
                seen += 1;
            }
        }
        assert!(seen > 0, "no plists among the fixtures");
    }

    mod files {
        use super::*;

        fn read(path: &Path) -> Result<Value, String> {
            read_file(path, Budget::FILE).map_err(|e| e.to_string())
        }

        #[test]
        fn a_regular_file_is_read() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("Status.plist");
            sample().to_file_binary(&path).unwrap();
            assert_eq!(read(&path), Ok(sample()));
        }

        #[test]
        fn what_is_not_a_file_is_refused_unread() {
            let dir = tempfile::tempdir().unwrap();
            assert!(
                read(dir.path())
                    .unwrap_err()
                    .ends_with("is a folder where a file should be")
            );
            let missing = read(&dir.path().join("none")).unwrap_err();
            assert!(missing.contains("none cannot be read"), "{missing}");
            #[cfg(unix)]
            {
                let zero = dir.path().join("zero");
                std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
                let err = read(&zero).unwrap_err();
                assert!(err.ends_with("is a device where a file should be"), "{err}");
                // Opening a FIFO would wait for a writer forever.
                let fifo = dir.path().join("fifo");
                let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
                // SAFETY: `c` is a valid NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
                let err = read(&fifo).unwrap_err();
                assert!(
                    err.ends_with("is a named pipe where a file should be"),
                    "{err}"
                );
            }
        }

        #[test]
        fn an_oversized_file_is_refused_without_reading_it_all() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("Info.plist");
            // Sparse: costs no disk.
            fs::File::create(&path)
                .unwrap()
                .set_len(65 * MIB as u64)
                .unwrap();
            let err = read(&path).unwrap_err();
            assert!(
                err.contains("Info.plist is refused: it is 65 MiB, more than the 64 MiB"),
                "{err}"
            );
        }

        #[test]
        fn a_hostile_file_names_itself() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("Status.plist");
            fs::write(&path, laughs(30, 4)).unwrap();
            let err = read(&path).unwrap_err();
            assert!(
                err.contains("Status.plist is refused: the plist holds more than 1000000 values"),
                "{err}"
            );
            fs::write(&path, b"<plist><dict><key>a</key></plist>").unwrap();
            let err = read(&path).unwrap_err();
            assert!(err.contains("Status.plist is not a valid plist"), "{err}");
        }
    }

    mod fuzz {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::*;

        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                any::<bool>().prop_map(Value::Boolean),
                any::<i64>().prop_map(|n| Value::Integer(n.into())),
                (-1e12f64..1e12).prop_map(Value::Real),
                // Printable ASCII (with `<`, `&` and quotes), then any
                // visible Unicode: XML cannot carry control characters.
                "[ -~]{0,24}".prop_map(Value::String),
                "\\PC{0,8}".prop_map(Value::String),
                vec(any::<u8>(), 0..40).prop_map(Value::Data),
                // Whole seconds: XML dates carry no fractions.
                (0u64..4_000_000_000).prop_map(|s| {
                    Value::Date((SystemTime::UNIX_EPOCH + Duration::from_secs(s)).into())
                }),
            ]
        }

        fn tree() -> impl Strategy<Value = Value> {
            leaf().prop_recursive(6, 200, 8, |inner| {
                prop_oneof![
                    vec(inner.clone(), 0..8).prop_map(Value::Array),
                    vec(("[ -~]{0,12}", inner), 0..8)
                        .prop_map(|pairs| Value::Dictionary(pairs.into_iter().collect())),
                ]
            })
        }

        /// Values in `v`, keys included, and its nesting of containers.
        fn measure(v: &Value) -> (u64, usize) {
            match v {
                Value::Array(items) => items.iter().fold((1, 1), |(n, d), item| {
                    let (m, e) = measure(item);
                    (n + m, d.max(e + 1))
                }),
                Value::Dictionary(dict) => dict.values().fold((1, 1), |(n, d), item| {
                    let (m, e) = measure(item);
                    (n + 1 + m, d.max(e + 1))
                }),
                _ => (1, 0),
            }
        }

        fn is_budget_error(e: &PlistError) -> bool {
            matches!(
                e,
                PlistError::TooManyElements { .. } | PlistError::TooDeep { .. }
            )
        }

        /// A binary plist of `n` objects from raw choices: a small integer,
        /// a string, or an array of references. With `dag`, an object refers
        /// only to objects before it and the top is the last.
        fn shared(raw: &[(u8, Vec<u16>)], dag: bool) -> (Vec<Obj>, usize) {
            let n = raw.len();
            let objects = raw
                .iter()
                .enumerate()
                .map(|(i, (kind, refs))| match (kind % 3, i) {
                    (0, _) | (_, 0) if dag => Obj::Int(*kind),
                    (0, _) => Obj::Int(*kind),
                    (1, _) => Obj::Str(format!("s{kind}")),
                    _ => Obj::Array(
                        refs.iter()
                            .map(|&r| usize::from(r) % if dag { i } else { n })
                            .collect(),
                    ),
                })
                .collect();
            (objects, n - 1)
        }

        /// The expanded count and nesting of each object of a DAG.
        fn expected(objects: &[Obj]) -> Vec<(u128, usize)> {
            let mut out: Vec<(u128, usize)> = Vec::new();
            for obj in objects {
                out.push(match obj {
                    Obj::Array(refs) => refs.iter().fold((1, 1), |(n, d), &r| {
                        (
                            (n + out[r].0).min(u128::from(u64::MAX)),
                            d.max(out[r].1 + 1),
                        )
                    }),
                    _ => (1, 0),
                });
            }
            out
        }

        fn expand(objects: &[Obj], at: usize) -> Value {
            match &objects[at] {
                Obj::Int(n) => Value::Integer(u64::from(*n).into()),
                Obj::Str(s) => Value::String(s.clone()),
                Obj::Array(refs) => {
                    Value::Array(refs.iter().map(|&r| expand(objects, r)).collect())
                }
                Obj::Dict(_) => unreachable!("the generator makes no dictionaries"),
            }
        }

        proptest! {
            #[test]
            fn random_trees_round_trip_in_both_formats(v in tree()) {
                for bytes in encoded(&v) {
                    prop_assert_eq!(parse(&bytes, Budget::MESSAGE).unwrap(), v.clone());
                }
            }

            #[test]
            fn accepted_exactly_when_within_budget(
                v in tree(),
                elements in 1u64..300,
                depth in 1usize..8,
            ) {
                let (n, d) = measure(&v);
                let b = budget(elements, depth);
                for bytes in encoded(&v) {
                    match parse(&bytes, b) {
                        Ok(parsed) => {
                            prop_assert!(n <= elements && d <= depth, "{n} values, {d} deep");
                            prop_assert_eq!(&parsed, &v);
                        }
                        Err(e) => {
                            prop_assert!(n > elements || d > depth, "{e}");
                            prop_assert!(is_budget_error(&e), "{e}");
                        }
                    }
                }
            }

            #[test]
            fn mangled_plists_never_panic(
                v in tree(),
                cut in 0usize..64,
                flips in vec((any::<usize>(), 1u8..), 0..8),
            ) {
                for mut bytes in encoded(&v) {
                    bytes.truncate(bytes.len().saturating_sub(cut));
                    for &(at, xor) in &flips {
                        if !bytes.is_empty() {
                            let i = at % bytes.len();
                            bytes[i] ^= xor;
                        }
                    }
                    let _ = parse(&bytes, Budget::FILE);
                    let _ = parse(&bytes, budget(20, 3));
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(
                binary_header in any::<bool>(),
                tail in vec(any::<u8>(), 0..512),
            ) {
                let mut bytes = if binary_header { BINARY_MAGIC.to_vec() } else { Vec::new() };
                bytes.extend(tail);
                let _ = parse(&bytes, Budget::FILE);
            }

            #[test]
            fn shared_references_are_counted_as_expanded(
                raw in vec((any::<u8>(), vec(any::<u16>(), 0..6)), 1..40),
                elements in 1u64..5000,
                ref_size in prop::sample::select(vec![1usize, 2, 3, 4, 8]),
            ) {
                let (objects, top) = shared(&raw, true);
                let (n, d) = expected(&objects)[top];
                let bytes = binary(&objects, top, ref_size);
                let b = budget(elements, 16);
                match parse(&bytes, b) {
                    Ok(parsed) => {
                        prop_assert!(n <= u128::from(elements) && d <= 16, "{n} values, {d} deep");
                        prop_assert_eq!(measure(&parsed).0 as u128, n);
                        prop_assert_eq!(parsed, expand(&objects, top));
                    }
                    Err(e) => {
                        // A table of more objects than values allowed is
                        // refused even when some are unreachable.
                        let table = objects.len() as u64 > elements;
                        prop_assert!(n > u128::from(elements) || d > 16 || table, "{e}");
                        prop_assert!(is_budget_error(&e), "{e}");
                    }
                }
            }

            #[test]
            fn references_anywhere_are_accepted_within_budget_or_refused(
                raw in vec((any::<u8>(), vec(any::<u16>(), 0..6)), 1..40),
                flips in vec((any::<usize>(), 1u8..), 0..3),
            ) {
                let (objects, top) = shared(&raw, false);
                let mut bytes = binary(&objects, top, 2);
                for (at, xor) in flips {
                    let i = at % bytes.len();
                    bytes[i] ^= xor;
                }
                let b = budget(5000, 16);
                if let Ok(parsed) = parse(&bytes, b) {
                    let (n, d) = measure(&parsed);
                    prop_assert!(n <= 5000 && d <= 16, "{n} values, {d} deep");
                }
            }
        }
    }
}
