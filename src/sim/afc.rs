//! com.apple.afc, the phone's media file service, as far as backup and
//! restore clients use it: the sync lock file `/com.apple.itunes.lock_sync`
//! (open, lock, unlock, close), file information and reads (the
//! `/iTunes_Control/iTunes` files a backup copies into Info.plist, which this
//! phone does not have), and the writes a restore makes
//! (`/iTunesRestore/RestoreApplications.plist`).
//!
//! A packet is a 40-byte header — the magic `CFA6LPAA`, then the entire
//! length, this header's length, the packet number and the operation, each a
//! little-endian u64 — and a payload. Every reply echoes the request's
//! packet number. Source: libimobiledevice `src/afc.c` and `afc.h` (the
//! operation and status numbers), pymobiledevice3 `services/afc.py`.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::conn::Conn;
use super::{Shared, lock};

const MAGIC: &[u8; 8] = b"CFA6LPAA";
const HEADER: u64 = 40;
/// A packet larger than this is refused (a RestoreApplications.plist of
/// every app's metadata stays far below it).
const MAX_PACKET: u64 = 16 * 1024 * 1024;
/// The largest read a client may ask for at once.
const MAX_READ: u64 = 1024 * 1024;
/// The media folder holds at most this many bytes and files, and a client
/// at most this many open files: a host cannot fill the simulator's memory.
const MAX_STORE: usize = 64 * 1024 * 1024;
const MAX_FILES: usize = 1024;
const MAX_HANDLES: usize = 64;

const OP_STATUS: u64 = 0x01;
const OP_DATA: u64 = 0x02;
const OP_REMOVE_PATH: u64 = 0x08;
const OP_MAKE_DIR: u64 = 0x09;
const OP_GET_FILE_INFO: u64 = 0x0A;
const OP_FILE_OPEN: u64 = 0x0D;
const OP_FILE_OPEN_RES: u64 = 0x0E;
const OP_READ: u64 = 0x0F;
const OP_WRITE: u64 = 0x10;
const OP_FILE_CLOSE: u64 = 0x14;
const OP_FILE_LOCK: u64 = 0x1B;

const SUCCESS: u64 = 0;
const UNKNOWN_PACKET_TYPE: u64 = 6;
const INVALID_ARG: u64 = 7;
const OBJECT_NOT_FOUND: u64 = 8;

/// The phone's media folder as AFC sees it: files by path, and folders.
#[derive(Debug, Default)]
pub(crate) struct MediaStore {
    pub files: BTreeMap<String, Vec<u8>>,
    pub folders: std::collections::BTreeSet<String>,
}

/// An open file: its path and where the next read or write goes.
struct Handle {
    path: String,
    position: usize,
}

pub(crate) async fn serve(mut conn: Conn, shared: &Arc<Shared>) -> io::Result<()> {
    let mut handles: HashMap<u64, Handle> = HashMap::new();
    let mut next_handle = 1u64;
    loop {
        let mut header = [0u8; HEADER as usize];
        match conn.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let field =
            |i: usize| u64::from_le_bytes(header[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
        let (entire, this, number, op) = (field(1), field(2), field(3), field(4));
        if &header[..8] != MAGIC
            || entire < HEADER
            || this < HEADER
            || this > entire
            || entire > MAX_PACKET
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an AFC packet",
            ));
        }
        let mut body = vec![0u8; (entire - HEADER) as usize];
        conn.read_exact(&mut body).await?;
        let path = || {
            let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
            normalize(&String::from_utf8_lossy(&body[..end]))
        };
        let u64_at = |at: usize| {
            body.get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let reply = match op {
            OP_FILE_OPEN => {
                let mode = u64_at(0).unwrap_or(0);
                let end = body[8.min(body.len())..]
                    .iter()
                    .position(|&b| b == 0)
                    .map(|n| n + 8)
                    .unwrap_or(body.len());
                let path = normalize(&String::from_utf8_lossy(
                    body.get(8..end).unwrap_or_default(),
                ));
                let mut store = lock(&shared.media);
                // Modes: 1 r, 2 r+ (created when missing), 3 w, 4 w+, 5 a, 6 a+.
                let exists = store.files.contains_key(&path);
                let full = !exists && store.files.len() >= MAX_FILES;
                match mode {
                    _ if path.is_empty() || full || handles.len() >= MAX_HANDLES => {
                        Reply::Status(INVALID_ARG)
                    }
                    1 if !exists => Reply::Status(OBJECT_NOT_FOUND),
                    1..=6 => {
                        if matches!(mode, 3 | 4) || !exists {
                            store.files.insert(path.clone(), Vec::new());
                        }
                        let position = if matches!(mode, 5 | 6) {
                            store.files.get(&path).map_or(0, Vec::len)
                        } else {
                            0
                        };
                        let handle = next_handle;
                        next_handle += 1;
                        handles.insert(handle, Handle { path, position });
                        Reply::Packet(OP_FILE_OPEN_RES, handle.to_le_bytes().to_vec())
                    }
                    _ => Reply::Status(INVALID_ARG),
                }
            }
            OP_FILE_LOCK | OP_FILE_CLOSE => match u64_at(0) {
                Some(h) if handles.contains_key(&h) => {
                    if op == OP_FILE_CLOSE {
                        handles.remove(&h);
                    }
                    Reply::Status(SUCCESS)
                }
                _ => Reply::Status(INVALID_ARG),
            },
            OP_READ => match (u64_at(0).and_then(|h| handles.get_mut(&h)), u64_at(8)) {
                (Some(handle), Some(size)) => {
                    let store = lock(&shared.media);
                    let data = store
                        .files
                        .get(&handle.path)
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    let start = handle.position.min(data.len());
                    let end = start
                        .saturating_add(size.min(MAX_READ) as usize)
                        .min(data.len());
                    handle.position = end;
                    Reply::Packet(OP_DATA, data[start..end].to_vec())
                }
                _ => Reply::Status(INVALID_ARG),
            },
            OP_WRITE => match u64_at(0).and_then(|h| handles.get_mut(&h)) {
                Some(handle)
                    if lock(&shared.media)
                        .files
                        .values()
                        .map(Vec::len)
                        .sum::<usize>()
                        + body.len()
                        > MAX_STORE =>
                {
                    let _ = handle;
                    Reply::Status(INVALID_ARG)
                }
                Some(handle) => {
                    let mut store = lock(&shared.media);
                    let file = store.files.entry(handle.path.clone()).or_default();
                    let data = &body[8..];
                    let end = handle.position + data.len();
                    if file.len() < end {
                        file.resize(end, 0);
                    }
                    file[handle.position..end].copy_from_slice(data);
                    handle.position = end;
                    Reply::Status(SUCCESS)
                }
                None => Reply::Status(INVALID_ARG),
            },
            OP_GET_FILE_INFO => {
                let path = path();
                let store = lock(&shared.media);
                let kind = if let Some(data) = store.files.get(&path) {
                    Some(("S_IFREG", data.len()))
                } else if path.is_empty() || store.folders.contains(&path) {
                    Some(("S_IFDIR", 0))
                } else {
                    None
                };
                match kind {
                    Some((ifmt, size)) => {
                        let time = "1700000000000000000";
                        let fields = [
                            ("st_size", size.to_string()),
                            ("st_blocks", size.div_ceil(512).to_string()),
                            ("st_nlink", "1".to_owned()),
                            ("st_ifmt", ifmt.to_owned()),
                            ("st_mtime", time.to_owned()),
                            ("st_birthtime", time.to_owned()),
                        ];
                        let mut out = Vec::new();
                        for (k, v) in fields {
                            out.extend_from_slice(k.as_bytes());
                            out.push(0);
                            out.extend_from_slice(v.as_bytes());
                            out.push(0);
                        }
                        Reply::Packet(OP_DATA, out)
                    }
                    None => Reply::Status(OBJECT_NOT_FOUND),
                }
            }
            OP_MAKE_DIR => {
                let path = path();
                let mut store = lock(&shared.media);
                // mkdir -p: every parent too.
                let mut at = String::new();
                for part in path.split('/').filter(|p| !p.is_empty()) {
                    if !at.is_empty() {
                        at.push('/');
                    }
                    at.push_str(part);
                    store.folders.insert(at.clone());
                }
                Reply::Status(SUCCESS)
            }
            OP_REMOVE_PATH => {
                let path = path();
                let mut store = lock(&shared.media);
                let removed = store.files.remove(&path).is_some() || store.folders.remove(&path);
                Reply::Status(if removed { SUCCESS } else { OBJECT_NOT_FOUND })
            }
            _ => Reply::Status(UNKNOWN_PACKET_TYPE),
        };
        let (op, payload) = match reply {
            Reply::Status(code) => (OP_STATUS, code.to_le_bytes().to_vec()),
            Reply::Packet(op, payload) => (op, payload),
        };
        let entire = HEADER + payload.len() as u64;
        let mut out = Vec::with_capacity(entire as usize);
        out.extend_from_slice(MAGIC);
        for v in [entire, entire, number, op] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&payload);
        conn.write_all(&out).await?;
        conn.flush().await?;
    }
}

enum Reply {
    Status(u64),
    Packet(u64, Vec<u8>),
}

/// A path relative to the media folder, without leading or doubled slashes.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}
