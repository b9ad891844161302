//! The DeviceLink conversation of mobilebackup2, spoken here rather than
//! through `idevice`'s client so that the phone is treated as the untrusted
//! peer it is: every frame's length is checked before anything is allocated
//! (`wire`), file data is streamed through one buffer whatever length a block
//! claims, every path goes through [`PhoneFolder`], and a file lands only
//! when the phone says it is complete. Every message is also a sign of
//! progress for the watchdog (`Observed`).

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use plist::{Dictionary, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::time::Instant;

use super::folder::{PhoneFolder, Refused, Use};
use crate::lock;
use crate::stall::Phase;
use crate::wire;

/// A file block's codes (DeviceLink's `DL_CODE_*`).
const CODE_SUCCESS: u8 = 0x00;
const CODE_ERROR_LOCAL: u8 = 0x06;
const CODE_FILE_DATA: u8 = 0x0c;
/// The longest file name or error text in a file stream.
const MAX_NAME: u32 = 4096;
const MAX_ERROR_TEXT: u32 = 64 * 1024;
/// File data is copied through a buffer of this size.
const CHUNK: usize = 256 * 1024;
/// The phone's "no such file" (errno 2 as DeviceLink numbers it).
const DEVICE_ENOENT: i64 = -6;
const EMPTY: &str = "___EmptyParameterString___";
/// The DeviceLink messages the conversation serves.
const SERVED: [&str; 12] = [
    "DLMessageDownloadFiles",
    "DLMessageUploadFiles",
    "DLMessageGetFreeDiskSpace",
    "DLContentsOfDirectory",
    "DLMessageCreateDirectory",
    "DLMessageMoveFiles",
    "DLMessageMoveItems",
    "DLMessageRemoveFiles",
    "DLMessageRemoveItems",
    "DLMessageCopyItem",
    "DLMessageProcessMessage",
    "DLMessageDisconnect",
];

/// What the conversation saw, read by the watchdog and the progress display.
#[derive(Debug, Clone)]
pub struct Observed {
    pub phase: Phase,
    pub last_progress: Instant,
    pub bytes: u64,
    pub files: u64,
    /// The phone's overall progress, 0–100, when it has said.
    pub percent: Option<f64>,
}

impl Observed {
    pub(crate) fn shared() -> Arc<Mutex<Observed>> {
        Arc::new(Mutex::new(Observed {
            phase: Phase::Starting,
            last_progress: Instant::now(),
            bytes: 0,
            files: 0,
            percent: None,
        }))
    }
}

/// Why the conversation ended without the phone's final answer.
#[derive(Debug)]
pub(crate) enum LinkError {
    /// The connection failed or ended (an unplug, most often).
    Io(io::Error),
    /// The phone broke the protocol: a message that cannot be understood.
    Protocol(String),
    /// The phone named a path outside its folder: the backup is stopped.
    Refused(Refused),
    /// A file could not be written on the host (a full disk, most often):
    /// the backup cannot be complete, so it is stopped.
    Write {
        path: std::path::PathBuf,
        source: io::Error,
    },
}

impl From<io::Error> for LinkError {
    fn from(e: io::Error) -> LinkError {
        LinkError::Io(e)
    }
}

fn protocol(why: impl Into<String>) -> LinkError {
    LinkError::Protocol(why.into())
}

/// One mobilebackup2 connection after the service has started.
pub(crate) struct Link<S> {
    stream: BufStream<S>,
    buffer: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    pub(crate) fn new(stream: S) -> Link<S> {
        Link {
            stream: BufStream::with_capacity(CHUNK, 64 * 1024, stream),
            buffer: vec![0; CHUNK],
        }
    }

    /// The DeviceLink version exchange, then mobilebackup2's Hello.
    pub(crate) async fn handshake(&mut self) -> Result<(), LinkError> {
        let (tag, _) = self.receive().await?;
        if tag != "DLMessageVersionExchange" {
            return Err(protocol(format!(
                "expected the version exchange, got {tag}"
            )));
        }
        self.send(vec![
            "DLMessageVersionExchange".into(),
            "DLVersionsOk".into(),
            400u64.into(),
        ])
        .await?;
        let (tag, _) = self.receive().await?;
        if tag != "DLMessageDeviceReady" {
            return Err(protocol(format!("expected DeviceReady, got {tag}")));
        }
        let mut hello = Dictionary::new();
        hello.insert(
            "SupportedProtocolVersions".into(),
            Value::Array(vec![Value::Real(2.0), Value::Real(2.1)]),
        );
        self.request("Hello", hello).await?;
        let reply = loop {
            let (tag, message) = self.receive().await?;
            if tag == "DLMessageProcessMessage" {
                break process_body(message);
            }
            self.status(-1, Some("Operation not supported"), None)
                .await?;
        };
        match reply.get("ErrorCode").and_then(Value::as_unsigned_integer) {
            Some(0) | None => Ok(()),
            Some(code) => Err(protocol(format!(
                "the iPhone refused Hello with error {code}"
            ))),
        }
    }

    /// Sends `["DLMessageProcessMessage", {MessageName: name, …body}]`.
    pub(crate) async fn request(&mut self, name: &str, mut body: Dictionary) -> io::Result<()> {
        body.insert("MessageName".into(), name.into());
        self.send(vec![
            "DLMessageProcessMessage".into(),
            Value::Dictionary(body),
        ])
        .await
    }

    /// Sends a frame made elsewhere (`wire::plist_frame`).
    pub(crate) async fn send_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.stream.write_all(frame).await?;
        self.stream.flush().await
    }

    async fn send(&mut self, message: Vec<Value>) -> io::Result<()> {
        wire::write_plist(&mut self.stream, &Value::Array(message), true).await
    }

    /// The next DeviceLink message: its tag and the whole array.
    pub(crate) async fn receive(&mut self) -> Result<(String, Vec<Value>), LinkError> {
        match wire::read_plist(&mut self.stream).await? {
            Some(Value::Array(message)) => match message.first() {
                Some(Value::String(tag)) => Ok((tag.clone(), message)),
                _ => Err(protocol("a DeviceLink message without its name")),
            },
            Some(_) => Err(protocol("a DeviceLink message that is not an array")),
            None => Err(LinkError::Io(io::ErrorKind::UnexpectedEof.into())),
        }
    }

    /// `["DLMessageStatusResponse", code, text, payload]`.
    pub(crate) async fn status(
        &mut self,
        code: i64,
        text: Option<&str>,
        payload: Option<Value>,
    ) -> io::Result<()> {
        self.send(vec![
            "DLMessageStatusResponse".into(),
            Value::Integer(code.into()),
            text.unwrap_or(EMPTY).into(),
            payload.unwrap_or_else(|| EMPTY.into()),
        ])
        .await
    }

    /// Serves the phone's file requests until its final answer: `Some` with
    /// the answer's dictionary, `None` when it disconnects without one. A
    /// refused path, in whatever request, is logged and the phone hears it
    /// (status -1 with the reason) before the conversation ends.
    pub(crate) async fn serve(
        &mut self,
        folder: &mut PhoneFolder,
        free_space: impl Fn() -> u64,
        observed: &Mutex<Observed>,
    ) -> Result<Option<Dictionary>, LinkError> {
        let served = self.requests(folder, free_space, observed).await;
        if let Err(LinkError::Refused(r)) = &served {
            tracing::error!("{r}");
            // The phone may not listen any more; the run ends either way.
            let _ = self.status(-1, Some(&r.to_string()), None).await;
        }
        served
    }

    async fn requests(
        &mut self,
        folder: &mut PhoneFolder,
        free_space: impl Fn() -> u64,
        observed: &Mutex<Observed>,
    ) -> Result<Option<Dictionary>, LinkError> {
        loop {
            let (tag, message) = self.receive().await?;
            // A message Unstuck serves is progress; one it does not is not,
            // so a phone that repeats nonsense still reads as stalled.
            if SERVED.contains(&tag.as_str()) {
                touch(observed, Phase::Starting, 0);
            }
            let percent = match tag.as_str() {
                "DLMessageUploadFiles" => message.get(2),
                "DLMessageDownloadFiles"
                | "DLMessageMoveFiles"
                | "DLMessageMoveItems"
                | "DLMessageRemoveFiles"
                | "DLMessageRemoveItems" => message.get(3),
                _ => None,
            }
            .and_then(Value::as_real)
            .filter(|p| p.is_finite() && *p > 0.0);
            // The phone's overall progress as the request starts (a batch of
            // files can take a while to arrive).
            if let Some(p) = percent {
                lock(observed).percent = Some(p.min(100.0));
            }
            match tag.as_str() {
                "DLMessageDownloadFiles" => self.download(folder, &message, observed).await?,
                "DLMessageUploadFiles" => self.upload(folder, observed).await?,
                "DLMessageGetFreeDiskSpace" => {
                    // The phone asks this early: it has started.
                    touch(observed, Phase::Copying, 0);
                    let free = free_space();
                    self.status(0, None, Some(Value::Integer(free.into())))
                        .await?;
                }
                "DLContentsOfDirectory" => {
                    let listing = match string_at(&message, 1) {
                        Some(wire) => list(&folder.resolve(wire, Use::List)?),
                        None => Dictionary::new(),
                    };
                    self.status(0, None, Some(Value::Dictionary(listing)))
                        .await?;
                }
                "DLMessageCreateDirectory" => {
                    let wire = string_at(&message, 1)
                        .ok_or_else(|| protocol("CreateDirectory without a path"))?;
                    let path = folder.resolve(wire, Use::MakeFolder)?;
                    let done = folder.make_folders(&path);
                    self.answer(done, wire, None).await?;
                }
                "DLMessageMoveFiles" | "DLMessageMoveItems" => {
                    let moves = message
                        .get(1)
                        .and_then(Value::as_dictionary)
                        .ok_or_else(|| protocol("MoveItems without its list"))?;
                    // Every path is checked before anything moves.
                    let mut checked = Vec::with_capacity(moves.len());
                    for (from, to) in moves {
                        let to = to
                            .as_string()
                            .ok_or_else(|| protocol("MoveItems to no path"))?;
                        checked.push((
                            folder.resolve(from, Use::MoveFrom)?,
                            folder.resolve(to, Use::MoveTo)?,
                        ));
                    }
                    let done = checked
                        .iter()
                        .try_for_each(|(from, to)| folder.rename(from, to));
                    self.answer(done, "a move", Some(Value::Dictionary(Dictionary::new())))
                        .await?;
                }
                "DLMessageRemoveFiles" | "DLMessageRemoveItems" => {
                    let items = message
                        .get(1)
                        .and_then(Value::as_array)
                        .ok_or_else(|| protocol("RemoveItems without its list"))?;
                    let mut checked = Vec::with_capacity(items.len());
                    for item in items {
                        let wire = item
                            .as_string()
                            .ok_or_else(|| protocol("RemoveItems of no path"))?;
                        checked.push(folder.resolve(wire, Use::Remove)?);
                    }
                    let done = checked.iter().try_for_each(|path| folder.remove(path));
                    self.answer(
                        done,
                        "a removal",
                        Some(Value::Dictionary(Dictionary::new())),
                    )
                    .await?;
                }
                "DLMessageCopyItem" => {
                    let (Some(from), Some(to)) = (string_at(&message, 1), string_at(&message, 2))
                    else {
                        return Err(protocol("CopyItem without two paths"));
                    };
                    let from = folder.resolve(from, Use::CopyFrom)?;
                    let to = folder.resolve(to, Use::CopyTo)?;
                    let done = folder.copy(&from, &to);
                    self.answer(done, "a copy", Some(Value::Dictionary(Dictionary::new())))
                        .await?;
                }
                "DLMessageProcessMessage" => return Ok(Some(process_body(message))),
                "DLMessageDisconnect" => return Ok(None),
                other => {
                    tracing::debug!(
                        message = other,
                        "answered a DeviceLink message Unstuck does not serve"
                    );
                    self.status(-1, Some("Operation not supported"), None)
                        .await?;
                }
            }
            if let Some(p) = percent {
                let mut o = lock(observed);
                if p >= 100.0 && o.phase == Phase::Copying {
                    o.phase = Phase::Finishing;
                }
            }
        }
    }

    /// Answers a request that was carried out or failed: 0, or -1 with the
    /// error's words (and `payload`, where the request's answer carries one).
    async fn answer(
        &mut self,
        done: io::Result<()>,
        what: &str,
        payload: Option<Value>,
    ) -> io::Result<()> {
        match done {
            Ok(()) => self.status(0, None, payload).await,
            Err(e) => {
                tracing::warn!(request = what, error = %e, "a request of the iPhone failed");
                self.status(-1, Some(&e.to_string()), payload).await
            }
        }
    }

    /// DLMessageDownloadFiles: the phone asks for files of the last backup.
    async fn download(
        &mut self,
        folder: &mut PhoneFolder,
        message: &[Value],
        observed: &Mutex<Observed>,
    ) -> Result<(), LinkError> {
        let files = message
            .get(1)
            .and_then(Value::as_array)
            .ok_or_else(|| protocol("DownloadFiles without its list"))?;
        // Every path is checked before any file is sent, so a refusal never
        // lands in the middle of a file stream.
        let mut checked = Vec::with_capacity(files.len());
        for wire in files {
            let wire = wire
                .as_string()
                .ok_or_else(|| protocol("DownloadFiles of no path"))?;
            checked.push((wire, folder.resolve(wire, Use::Read)?));
        }
        let mut failed = Dictionary::new();
        for (wire, path) in checked {
            self.stream
                .write_all(&(wire.len() as u32).to_be_bytes())
                .await?;
            self.stream.write_all(wire.as_bytes()).await?;
            let file = folder.open(&path);
            let sent = match file {
                Ok(mut file) => self.send_file(&mut file, observed).await?,
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                let code = if e.kind() == io::ErrorKind::NotFound {
                    DEVICE_ENOENT
                } else {
                    -1
                };
                let text = e.to_string();
                self.file_block(CODE_ERROR_LOCAL, text.as_bytes()).await?;
                let mut entry = Dictionary::new();
                entry.insert("DLFileErrorString".into(), text.into());
                entry.insert("DLFileErrorCode".into(), Value::Integer(code.into()));
                failed.insert(wire.to_owned(), Value::Dictionary(entry));
            }
        }
        self.stream.write_all(&0u32.to_be_bytes()).await?;
        self.stream.flush().await?;
        if failed.is_empty() {
            self.status(0, None, Some(Value::Dictionary(Dictionary::new())))
                .await?;
        } else {
            self.status(-13, Some("Multi status"), Some(Value::Dictionary(failed)))
                .await?;
        }
        Ok(())
    }

    /// Streams one file; `Ok(Err(_))` when reading it failed before the end
    /// (the phone is told in the stream).
    async fn send_file(
        &mut self,
        file: &mut std::fs::File,
        observed: &Mutex<Observed>,
    ) -> io::Result<io::Result<()>> {
        loop {
            let n = match file.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => return Ok(Err(e)),
            };
            self.stream.write_all(&(n as u32 + 1).to_be_bytes()).await?;
            self.stream.write_u8(CODE_FILE_DATA).await?;
            self.stream.write_all(&self.buffer[..n]).await?;
            touch(observed, Phase::Copying, 0);
        }
        self.file_block(CODE_SUCCESS, &[]).await?;
        Ok(Ok(()))
    }

    async fn file_block(&mut self, code: u8, data: &[u8]) -> io::Result<()> {
        self.stream
            .write_all(&(data.len() as u32 + 1).to_be_bytes())
            .await?;
        self.stream.write_u8(code).await?;
        self.stream.write_all(data).await
    }

    /// DLMessageUploadFiles: the phone sends files, each as its folder's
    /// name, its path, then blocks of data ending in a success or error code.
    async fn upload(
        &mut self,
        folder: &mut PhoneFolder,
        observed: &Mutex<Observed>,
    ) -> Result<(), LinkError> {
        touch(observed, Phase::Copying, 0);
        let mut refused: Option<Refused> = None;
        // The first file that could not be written ends the batch.
        let mut failed: Option<(std::path::PathBuf, io::Error)> = None;
        loop {
            let Some(_folder_name) = self.name().await? else {
                break;
            };
            let Some(wire) = self.name().await? else {
                break;
            };
            // A refused path's data is read and dropped, so that the phone
            // hears the refusal instead of a broken stream.
            let (mut target, path) = match folder.resolve(&wire, Use::Write) {
                Ok(path) => match folder.create(&path) {
                    Ok(part) => (Some(part), path),
                    Err(e) => {
                        failed.get_or_insert((path.clone(), e));
                        (None, path)
                    }
                },
                Err(r) => {
                    refused.get_or_insert(r);
                    (None, Default::default())
                }
            };
            let complete = loop {
                let len = self.stream.read_u32().await?;
                if len == 0 {
                    break false;
                }
                let code = self.stream.read_u8().await?;
                let mut left = u64::from(len - 1);
                if code != CODE_FILE_DATA {
                    if left > u64::from(MAX_ERROR_TEXT) {
                        return Err(protocol(format!(
                            "a file block of {left} bytes with code {code}"
                        )));
                    }
                    let mut text = vec![0; left as usize];
                    self.stream.read_exact(&mut text).await?;
                    if code != CODE_SUCCESS {
                        tracing::warn!(path = %wire, error = %String::from_utf8_lossy(&text), "the iPhone could not send a file");
                    }
                    break code == CODE_SUCCESS;
                }
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    self.stream.read_exact(&mut self.buffer[..n]).await?;
                    if let Some(part) = &mut target
                        && let Err(e) = part.write_all(&self.buffer[..n])
                    {
                        failed.get_or_insert((path.clone(), e));
                        target = None;
                    }
                    left -= n as u64;
                    touch(observed, Phase::Copying, n as u64);
                }
            };
            // Incomplete (the phone gave up on it): dropping the part file
            // leaves the old file as it was.
            if let Some(part) = target.take()
                && complete
            {
                match part.commit() {
                    Ok(()) => lock(observed).files += 1,
                    Err(e) => {
                        failed.get_or_insert((path, e));
                    }
                }
            }
            if failed.is_some() {
                break;
            }
        }
        if let Some(r) = refused {
            return Err(LinkError::Refused(r));
        }
        if let Some((path, source)) = failed {
            tracing::error!(path = %path.display(), error = %source, "could not write a backup file");
            let text = format!(
                "the computer could not write a file: {}",
                crate::humanize::io_error(&source)
            );
            // The phone may already have hung up; the backup stops either way.
            let _ = self.status(-1, Some(&text), None).await;
            return Err(LinkError::Write { path, source });
        }
        self.status(0, None, Some(Value::Dictionary(Dictionary::new())))
            .await?;
        Ok(())
    }

    /// A length-prefixed name in a file stream; `None` at the batch's end.
    async fn name(&mut self) -> Result<Option<String>, LinkError> {
        let len = self.stream.read_u32().await?;
        if len == 0 {
            return Ok(None);
        }
        if len > MAX_NAME {
            return Err(protocol(format!("a file name of {len} bytes")));
        }
        let mut bytes = vec![0; len as usize];
        self.stream.read_exact(&mut bytes).await?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| protocol("a file name that is not UTF-8"))
    }
}

impl From<Refused> for LinkError {
    fn from(r: Refused) -> LinkError {
        LinkError::Refused(r)
    }
}

fn touch(observed: &Mutex<Observed>, phase: Phase, bytes: u64) {
    let mut o = lock(observed);
    if phase as u8 > o.phase as u8 {
        o.phase = phase;
    }
    o.last_progress = Instant::now();
    o.bytes += bytes;
}

fn string_at(message: &[Value], i: usize) -> Option<&str> {
    message.get(i).and_then(Value::as_string)
}

/// The dictionary of a `DLMessageProcessMessage`.
fn process_body(message: Vec<Value>) -> Dictionary {
    match message.into_iter().nth(1) {
        Some(Value::Dictionary(d)) => d,
        _ => Dictionary::new(),
    }
}

/// DLContentsOfDirectory's answer: each entry's type, size and date. Links
/// are reported as what they are, not followed.
fn list(path: &std::path::Path) -> Dictionary {
    let mut out = Dictionary::new();
    let Ok(entries) = std::fs::read_dir(path) else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let kind = if meta.is_dir() {
            "DLFileTypeDirectory"
        } else if meta.is_file() {
            "DLFileTypeRegular"
        } else {
            "DLFileTypeUnknown"
        };
        let mut d = Dictionary::new();
        d.insert("DLFileType".into(), kind.into());
        d.insert("DLFileSize".into(), meta.len().into());
        if let Ok(modified) = meta.modified() {
            d.insert(
                "DLFileModificationDate".into(),
                Value::Date(modified.into()),
            );
        }
        out.insert(
            entry.file_name().to_string_lossy().into_owned(),
            Value::Dictionary(d),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    //! The conversation fed whole sequences of what a phone may send, good
    //! and hostile mixed, from generators that know the protocol's shape.

    use std::fs;
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;

    const UDID: &str = "00008030-0011223344556677";

    /// A path the phone may name: mostly its own, some escapes.
    fn path() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-f0-9]{2}/[a-f0-9]{4}".prop_map(|p| format!("{UDID}/{p}")),
            2 => prop::sample::select(vec!["Manifest.db", "Status.plist", "Info.plist", "ab"])
                .prop_map(|n| format!("{UDID}/{n}")),
            1 => prop::sample::select(vec![
                "../outside/sentinel".to_owned(),
                "00008030-FFFFFFFFFFFFFFFF/Status.plist".to_owned(),
                format!("{UDID}/../outside/sentinel"),
                format!("{UDID}/ab/../../outside"),
                "/tmp/x".to_owned(),
                UDID.to_owned(),
                format!("{UDID}/C:/x"),
                format!("{UDID}/NUL"),
                String::new(),
            ]),
        ]
    }

    #[derive(Debug, Clone)]
    enum Sent {
        Upload(Vec<(String, Vec<u8>, u8)>),
        Remove(String),
        Move(String, String),
        Copy(String, String),
        MakeFolder(String),
        Download(String),
        List(String),
        Garbage(Vec<u8>),
    }

    fn sent() -> impl Strategy<Value = Sent> {
        let file = (
            path(),
            prop::collection::vec(any::<u8>(), 0..300),
            prop::sample::select(vec![0u8, 0x0b, 0x0c]),
        );
        prop_oneof![
            4 => prop::collection::vec(file, 0..4).prop_map(Sent::Upload),
            1 => path().prop_map(Sent::Remove),
            1 => (path(), path()).prop_map(|(a, b)| Sent::Move(a, b)),
            1 => (path(), path()).prop_map(|(a, b)| Sent::Copy(a, b)),
            1 => path().prop_map(Sent::MakeFolder),
            1 => path().prop_map(Sent::Download),
            1 => path().prop_map(Sent::List),
            1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Sent::Garbage),
        ]
    }

    fn message(out: &mut Vec<u8>, items: Vec<Value>) {
        out.extend(wire::plist_frame(&Value::Array(items), true));
    }

    fn encode(all: &[Sent]) -> Vec<u8> {
        let mut out = Vec::new();
        let extra = || Value::Dictionary(Dictionary::new());
        for s in all {
            match s {
                Sent::Upload(files) => {
                    message(
                        &mut out,
                        vec![
                            "DLMessageUploadFiles".into(),
                            extra(),
                            Value::Real(50.0),
                            0u64.into(),
                        ],
                    );
                    for (name, data, end) in files {
                        for n in [name, name] {
                            out.extend((n.len() as u32).to_be_bytes());
                            out.extend(n.as_bytes());
                        }
                        if *end == 0x0c {
                            // A file cut short: its data, then the next name.
                            out.extend((data.len() as u32 + 1).to_be_bytes());
                            out.push(0x0c);
                            out.extend(data);
                            continue;
                        }
                        for chunk in data.chunks(100) {
                            out.extend((chunk.len() as u32 + 1).to_be_bytes());
                            out.push(0x0c);
                            out.extend(chunk);
                        }
                        out.extend(1u32.to_be_bytes());
                        out.push(*end);
                    }
                    out.extend(0u32.to_be_bytes());
                }
                Sent::Remove(p) => message(
                    &mut out,
                    vec![
                        "DLMessageRemoveItems".into(),
                        Value::Array(vec![p.as_str().into()]),
                        extra(),
                        Value::Real(1.0),
                    ],
                ),
                Sent::Move(a, b) => {
                    let mut d = Dictionary::new();
                    d.insert(a.clone(), b.as_str().into());
                    message(
                        &mut out,
                        vec![
                            "DLMessageMoveItems".into(),
                            Value::Dictionary(d),
                            extra(),
                            Value::Real(1.0),
                        ],
                    );
                }
                Sent::Copy(a, b) => message(
                    &mut out,
                    vec![
                        "DLMessageCopyItem".into(),
                        a.as_str().into(),
                        b.as_str().into(),
                    ],
                ),
                Sent::MakeFolder(p) => message(
                    &mut out,
                    vec!["DLMessageCreateDirectory".into(), p.as_str().into()],
                ),
                Sent::Download(p) => message(
                    &mut out,
                    vec![
                        "DLMessageDownloadFiles".into(),
                        Value::Array(vec![p.as_str().into()]),
                        extra(),
                        Value::Real(1.0),
                    ],
                ),
                Sent::List(p) => message(
                    &mut out,
                    vec!["DLContentsOfDirectory".into(), p.as_str().into()],
                ),
                Sent::Garbage(bytes) => {
                    out.extend((bytes.len() as u32).to_be_bytes());
                    out.extend(bytes);
                }
            }
        }
        let mut done = Dictionary::new();
        done.insert("ErrorCode".into(), 0u64.into());
        message(
            &mut out,
            vec!["DLMessageProcessMessage".into(), Value::Dictionary(done)],
        );
        out
    }

    /// Every file under `dir` but the phone's folder, with its bytes.
    fn outside(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        walkdir::WalkDir::new(dir)
            .sort_by_file_name()
            .into_iter()
            .flatten()
            .filter(|e| !e.path().starts_with(dir.join("root").join(UDID)))
            .map(|e| {
                (
                    e.path().to_path_buf(),
                    fs::read(e.path()).unwrap_or_default(),
                )
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn nothing_outside_the_phone_folder_changes(all in prop::collection::vec(sent(), 0..12)) {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("root");
            fs::create_dir_all(root.join(UDID)).unwrap();
            fs::create_dir_all(root.join("00008030-FFFFFFFFFFFFFFFF")).unwrap();
            fs::write(root.join("00008030-FFFFFFFFFFFFFFFF/Status.plist"), b"other").unwrap();
            fs::create_dir_all(dir.path().join("outside")).unwrap();
            fs::write(dir.path().join("outside/sentinel"), b"keep").unwrap();
            let before = outside(dir.path());

            let bytes = encode(&all);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let ended = rt.block_on(async {
                let stream = tokio::io::join(&bytes[..], tokio::io::sink());
                let mut link = Link::new(stream);
                let mut folder = PhoneFolder::new(&root, UDID);
                let observed = Observed::shared();
                link.serve(&mut folder, || 1 << 30, &observed).await.map(|_| ())
            });
            // However it ended, nothing outside moved and no part file stayed.
            prop_assert_eq!(outside(dir.path()), before);
            let parts = walkdir::WalkDir::new(&root).into_iter().flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".unstuck-part"))
                .count();
            prop_assert_eq!(parts, 0);
            // An empty name in an upload is the batch's end marker, so what
            // follows it is out of step: count it with the garbage.
            let well_formed = all.iter().all(|s| match s {
                Sent::Garbage(_) => false,
                Sent::Upload(files) => files.iter().all(|(name, ..)| !name.is_empty()),
                _ => true,
            });
            if well_formed {
                // A conversation of well-formed messages ends at the final
                // answer, a refusal, or a file the host cannot write (a file
                // where a folder is); never in a broken stream.
                prop_assert!(
                    matches!(
                        ended,
                        Ok(()) | Err(LinkError::Refused(_) | LinkError::Protocol(_) | LinkError::Write { .. })
                    ),
                    "{:?}",
                    ended
                );
            }
        }
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;

    /// A refused path, in a request other than an upload, is answered with
    /// status -1 and the reason before the conversation ends.
    #[test]
    fn the_phone_hears_a_refusal() {
        let udid = "00008030-0011223344556677";
        let dir = tempfile::tempdir().unwrap();
        let mut sent = Vec::new();
        for message in [
            vec![
                Value::from("DLMessageRemoveItems"),
                Value::Array(vec!["../".into()]),
                Value::Dictionary(Dictionary::new()),
                Value::Real(1.0),
            ],
            vec![
                Value::from("DLMessageDownloadFiles"),
                Value::Array(vec![
                    format!("{udid}/Status.plist").into(),
                    "00008030-FFFFFFFFFFFFFFFF/Manifest.plist".into(),
                ]),
                Value::Dictionary(Dictionary::new()),
                Value::Real(1.0),
            ],
        ] {
            let input = wire::plist_frame(&Value::Array(message), true);
            let mut output = Vec::new();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let ended = rt.block_on(async {
                let stream = tokio::io::join(&input[..], &mut output);
                let mut link = Link::new(stream);
                let mut folder = PhoneFolder::new(dir.path(), udid);
                link.serve(&mut folder, || 0, &Observed::shared()).await
            });
            assert!(matches!(ended, Err(LinkError::Refused(_))), "{ended:?}");
            sent.push(output);
        }
        for output in sent {
            // Only the answer went out: no file stream began before it.
            let reply = wire::parse_value(&output[4..]).unwrap();
            let reply = reply.as_array().unwrap();
            assert_eq!(reply[0].as_string(), Some("DLMessageStatusResponse"));
            assert_eq!(reply[1].as_signed_integer(), Some(-1));
            assert!(reply[2].as_string().unwrap().contains("refused"));
        }
    }
}
