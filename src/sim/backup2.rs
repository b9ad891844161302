//! The device side of a mobilebackup2 Backup (`mobilebackup2.rs` takes the
//! request), and the DeviceLink messages every request uses. The device drives:
//! it downloads what the host has of the last backup, asks for free space,
//! creates the hashed folders, uploads files in batches, then Manifest.db,
//! Manifest.plist and a finished Status.plist, and ends with a
//! `DLMessageProcessMessage` carrying the ErrorCode. Scripted faults (slow
//! start, stall, unplug, passcode wait, host disk full, final error) happen
//! along the way.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use plist::{Dictionary, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::conn::Conn;
use super::protection::{Cbc, Protection};
use super::{Shared, SimConfig, SimEvent, lock};
use crate::synthetic::{self, ManifestRow, SyntheticBackup};
use crate::wire;

const CODE_SUCCESS: u8 = 0x00;
const CODE_FILE_DATA: u8 = 0x0c;
/// File data goes out in pieces of this size (a multiple of 8, see
/// `synthetic::content_chunk`).
const CHUNK: usize = 64 * 1024;
/// Files per DLMessageUploadFiles batch, and bytes: a batch ends at
/// whichever comes first, so progress is reported often on a small phone.
const BATCH_FILES: usize = 64;
const BATCH_BYTES: u64 = 256 * 1024;
/// The bound on a file the host sends back (only metadata files are asked for).
const MAX_DOWNLOAD: u64 = 512 * 1024 * 1024;
/// `MBFile.LastModified` of a file that never changed.
const BASE_MTIME: u64 = 1_700_000_000;

pub(crate) fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

pub(crate) fn tag(message: &[Value]) -> &str {
    message.first().and_then(Value::as_string).unwrap_or("")
}

pub(crate) fn response(code: u64, description: Option<&str>) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("MessageName".into(), "Response".into());
    d.insert("ErrorCode".into(), code.into());
    if let Some(description) = description {
        d.insert("ErrorDescription".into(), description.into());
    }
    d
}

pub(crate) async fn send(conn: &mut Conn, message: Vec<Value>) -> io::Result<()> {
    wire::write_plist(conn, &Value::Array(message), true).await
}

pub(crate) async fn process_message(conn: &mut Conn, body: Dictionary) -> io::Result<()> {
    send(
        conn,
        vec!["DLMessageProcessMessage".into(), Value::Dictionary(body)],
    )
    .await
}

pub(crate) async fn receive(conn: &mut Conn) -> io::Result<Vec<Value>> {
    match wire::read_plist(conn).await? {
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(invalid("a DeviceLink message that is not an array")),
        None => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the host hung up",
        )),
    }
}

/// Reads the host's `DLMessageStatusResponse`: its code (signed; hosts send
/// -6 as a huge unsigned number too) and its payload.
async fn status_response(conn: &mut Conn) -> io::Result<(i64, Value)> {
    let message = receive(conn).await?;
    if tag(&message) != "DLMessageStatusResponse" {
        return Err(invalid(format!(
            "expected a status response, got {}",
            tag(&message)
        )));
    }
    let code = match message.get(1) {
        Some(Value::Integer(i)) => i
            .as_signed()
            .or_else(|| i.as_unsigned().map(|u| u as i64))
            .unwrap_or(-1),
        _ => -1,
    };
    Ok((
        code,
        message.get(3).cloned().unwrap_or(Value::Boolean(false)),
    ))
}

async fn finish(
    conn: &mut Conn,
    shared: &Shared,
    code: u64,
    description: &str,
    files: usize,
) -> io::Result<()> {
    shared.log(SimEvent::BackupFinished {
        error_code: code,
        files,
    });
    let description = (code != 0).then_some(description);
    process_message(conn, response(code, description)).await
}

/// The phone's side of one backup.
pub(crate) async fn backup(
    conn: &mut Conn,
    shared: &Arc<Shared>,
    request: &Dictionary,
) -> io::Result<()> {
    let config = shared.config();
    let udid = request
        .get("TargetIdentifier")
        .and_then(Value::as_string)
        .unwrap_or(&config.udid)
        .to_owned();
    let force_full = request
        .get("Options")
        .and_then(Value::as_dictionary)
        .and_then(|o| o.get("ForceFullBackup"))
        .and_then(Value::as_boolean)
        .unwrap_or(false);

    tokio::time::sleep(config.first_message_delay).await;
    if let Some(wait) = config.passcode_wait {
        shared.log(SimEvent::WaitingForPasscode);
        tokio::time::sleep(wait).await;
        return finish(
            conn,
            shared,
            208,
            "The passcode was not entered on the device in time.",
            0,
        )
        .await;
    }

    // What the host kept of the last backup.
    let wanted = ["Status.plist", "Manifest.plist", "Manifest.db"].map(|f| format!("{udid}/{f}"));
    let host = download_files(conn, &wanted).await?;
    let protection = protection(&config, &udid);
    // A backup whose encryption differs from the last one is a full one:
    // the old Manifest.db does not open with this backup's keys.
    let previous = if force_full {
        None
    } else {
        previous_backup(&host, &udid, protection.as_ref())
    };
    let incremental = previous.is_some();
    shared.log(SimEvent::BackupStarted { incremental });

    let generation = *lock(&shared.generation);
    let plan = plan(&config, generation, previous.as_ref());
    let needed = config
        .claimed_backup_bytes
        .unwrap_or_else(|| plan.iter().map(|f| f.size).sum::<u64>() + 1024 * 1024);

    send(conn, vec!["DLMessageGetFreeDiskSpace".into()]).await?;
    let (_, free) = status_response(conn).await?;
    let free = free.as_unsigned_integer().unwrap_or(0);
    if free < needed {
        send(conn, vec!["DLMessagePurgeDiskSpace".into(), needed.into()]).await?;
        // Some hosts answer, some do not: wait briefly, then give up either way.
        let _ = tokio::time::timeout(Duration::from_secs(2), status_response(conn)).await;
        let description = format!(
            "Not enough free disk space on the computer: the backup needs {}, {} are free.",
            crate::humanize::bytes(needed),
            crate::humanize::bytes(free)
        );
        return finish(conn, shared, 105, &description, 0).await;
    }

    if let Some(how) = config.hostile {
        shared.log(SimEvent::Attacked(how));
        attack(conn, &udid, how).await?;
        return finish(conn, shared, 1, "The backup failed after a copy.", 0).await;
    }

    let template = template(&config, &udid);
    let mut status = template.status_plist("uploading");
    if let Value::Dictionary(d) = &mut status {
        d.insert("IsFullBackup".into(), (!incremental).into());
    }
    upload_batch(conn, vec![meta_file(&udid, "Status.plist", &status)], 0.0).await?;

    let folders: BTreeSet<String> = plan
        .iter()
        .map(|f| format!("{udid}/{}", &f.id[..2]))
        .collect();
    for folder in folders {
        send(conn, vec!["DLMessageCreateDirectory".into(), folder.into()]).await?;
        status_response(conn).await?;
    }

    let mut pacer = Pacer::new(config.throughput);
    let total: u64 = plan.iter().map(|f| f.size).sum::<u64>().max(1);
    let mut sent_bytes = 0u64;
    let mut stalled = false;
    for batch in batches(&plan) {
        let batch_bytes: u64 = batch.iter().map(|f| f.size).sum();
        // The overall progress when the batch starts, as idevicebackup2
        // reads it (its progress bar moves on each message).
        let before = 100.0 * sent_bytes as f64 / total as f64;
        send(
            conn,
            vec![
                "DLMessageUploadFiles".into(),
                Value::Dictionary(Dictionary::new()),
                Value::Real(before.min(99.0)),
                batch_bytes.into(),
            ],
        )
        .await?;
        for file in batch {
            let percent = 100.0 * sent_bytes as f64 / total as f64;
            if let Some(stall) = config.stall
                && !stalled
                && percent >= stall.at_percent
            {
                stalled = true;
                shared.log(SimEvent::Stalled {
                    at_percent: percent as u32,
                });
                tokio::time::sleep(stall.duration).await;
            }
            if let Some(at) = config.unplug_at_percent
                && percent >= at
            {
                shared.log(SimEvent::Unplugged {
                    at_percent: percent as u32,
                });
                // Detaching ends this connection with every other one.
                shared.detach();
                return Ok(());
            }
            send_file(conn, &udid, file, &config, protection.as_ref(), &mut pacer).await?;
            sent_bytes += file.size;
        }
        conn.write_all(&0u32.to_be_bytes()).await?;
        conn.flush().await?;
        status_response(conn).await?;
    }

    // An unplug due later than the last file's start happens before the
    // closing records: the files are all there, the backup is not.
    if let Some(at) = config.unplug_at_percent {
        shared.log(SimEvent::Unplugged {
            at_percent: at.min(100.0) as u32,
        });
        shared.detach();
        return Ok(());
    }

    // The file list of the whole backup, then the records that close it.
    let rows: Vec<ManifestRow> = (0..config.content.files)
        .map(|n| {
            let (domain, path) = template.file_name(n);
            let id = synthetic::file_id(&domain, &path);
            let modified = modified(&config, generation, n);
            let encryption_key = protection
                .as_ref()
                .map(|p| p.file_key_blob(&p.file_key(&id, modified)));
            ManifestRow {
                id,
                domain,
                path,
                size: config.content.file_size as u64,
                modified,
                encryption_key,
            }
        })
        .collect();
    let db = tempfile::NamedTempFile::new()?;
    synthetic::write_manifest_db(db.path(), &rows).map_err(io::Error::other)?;
    let mut db_bytes = tokio::fs::read(db.path()).await?;
    let mut manifest = template.manifest_plist();
    if let (Some(p), Value::Dictionary(d)) = (&protection, &mut manifest) {
        db_bytes = p.encrypt_manifest(&db_bytes);
        d.insert("BackupKeyBag".into(), Value::Data(p.keybag.clone()));
        d.insert("ManifestKey".into(), Value::Data(p.manifest_key_blob()));
    }
    let mut closing = vec![
        (format!("{udid}/Manifest.db"), db_bytes),
        meta_file(&udid, "Manifest.plist", &manifest),
    ];
    if let Some((code, description)) = &config.final_error {
        upload_batch(conn, closing, 99.0).await?;
        return finish(conn, shared, *code, description, plan.len()).await;
    }
    let mut finished = template.status_plist("finished");
    if let Value::Dictionary(d) = &mut finished {
        d.insert("IsFullBackup".into(), (!incremental).into());
    }
    closing.push(meta_file(&udid, "Status.plist", &finished));
    upload_batch(conn, closing, 100.0).await?;
    tokio::time::sleep(config.finish_delay).await;
    *lock(&shared.generation) += 1;
    finish(conn, shared, 0, "", plan.len()).await
}

/// Carries out a hostile phone's steps. Only an attack whose harm shows
/// later (a copy over a file the host's snapshot shares) returns `Ok`: the
/// backup then fails; every other one ends the connection, whatever the
/// host answered (it should have hung up).
async fn attack(conn: &mut Conn, udid: &str, how: super::Hostile) -> io::Result<()> {
    use super::hostile::Step;
    let steps = super::hostile::attack(udid, how);
    for step in steps {
        match step {
            Step::Send(message) => send(conn, message).await?,
            Step::Upload(files) => upload_batch(conn, files, 10.0).await?,
            Step::Raw(bytes) => {
                conn.write_all(&bytes).await?;
                conn.flush().await?;
            }
        }
    }
    if how == super::Hostile::CopyOverShared {
        status_response(conn).await?;
        return Ok(());
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), status_response(conn)).await;
    Err(io::Error::other("the hostile phone made its attack"))
}

/// A content file to send.
struct PlannedFile {
    index: usize,
    id: String,
    domain: String,
    size: u64,
    version: u64,
}

/// When file `n` last changed on the phone: the first `changed_files` files
/// change after every finished backup.
fn modified(config: &SimConfig, generation: u64, n: usize) -> u64 {
    if n < config.content.changed_files {
        BASE_MTIME + generation
    } else {
        BASE_MTIME
    }
}

/// Every file the host lacks or holds in an older version.
fn plan(
    config: &SimConfig,
    generation: u64,
    previous: Option<&HashMap<String, u64>>,
) -> Vec<PlannedFile> {
    let template = template(config, &config.udid);
    (0..config.content.files)
        .filter_map(|n| {
            let (domain, path) = template.file_name(n);
            let id = synthetic::file_id(&domain, &path);
            let version = modified(config, generation, n);
            let unchanged = previous.and_then(|p| p.get(&id)) == Some(&version);
            (!unchanged).then_some(PlannedFile {
                index: n,
                id,
                domain,
                size: config.content.file_size as u64,
                version,
            })
        })
        .collect()
}

/// The synthetic backup whose plists and file names the phone uses.
pub(crate) fn template(config: &SimConfig, udid: &str) -> SyntheticBackup {
    let mut t = SyntheticBackup::new(udid, Timestamp::now());
    t.device_name = config.device_name.clone();
    t.product_type = config.product_type.clone();
    t.ios_version = config.ios_version.clone();
    t.build_version = config.build_version.clone();
    t.files = config.content.files;
    t.file_size = config.content.file_size;
    t.seed = config.content.seed;
    t.encrypted = config.will_encrypt;
    t
}

/// The seed of a file's bytes in `version`: a file that never changed has
/// exactly `synthetic::file_content(seed, n, size)`; each change, new bytes.
pub(crate) fn content_seed(config: &SimConfig, version: u64) -> u64 {
    config.content.seed ^ (version - BASE_MTIME).wrapping_mul(0x51_7CC1_B727_220A)
}

/// The keys of this phone's backups, when it encrypts them.
fn protection(config: &SimConfig, udid: &str) -> Option<Protection> {
    match (&config.password, config.will_encrypt) {
        (Some(password), true) => Some(Protection::new(udid, password)),
        _ => None,
    }
}

async fn send_file(
    conn: &mut Conn,
    udid: &str,
    file: &PlannedFile,
    config: &SimConfig,
    protection: Option<&Protection>,
    pacer: &mut Pacer,
) -> io::Result<()> {
    let dname = format!("{}-{}", file.domain, file.index);
    let fname = format!("{udid}/{}/{}", &file.id[..2], file.id);
    let mut head = Vec::new();
    for name in [&dname, &fname] {
        head.extend_from_slice(&(name.len() as u32).to_be_bytes());
        head.extend_from_slice(name.as_bytes());
    }
    conn.write_all(&head).await?;
    let seed = content_seed(config, file.version);
    let mut cbc = protection.map(|p| Cbc::new(&p.file_key(&file.id, file.version)));
    let mut offset = 0u64;
    loop {
        let len = CHUNK.min((file.size - offset) as usize);
        let last = offset + len as u64 >= file.size;
        let mut data = synthetic::content_chunk(seed, file.index as u64, offset, len);
        // An encrypted body ends with its padding: the last piece grows by
        // up to 16 bytes (CHUNK is a multiple of 16).
        data = match (cbc.as_mut(), last) {
            (Some(cbc), false) => {
                cbc.update(&mut data);
                data
            }
            (Some(_), true) => cbc.take().map(|c| c.finish(&data)).unwrap_or(data),
            (None, _) => data,
        };
        if !data.is_empty() {
            let mut block = Vec::with_capacity(data.len() + 5);
            block.extend_from_slice(&(data.len() as u32 + 1).to_be_bytes());
            block.push(CODE_FILE_DATA);
            block.extend_from_slice(&data);
            conn.write_all(&block).await?;
        }
        offset += len as u64;
        pacer.sent(len as u64).await;
        if last {
            break;
        }
    }
    conn.write_all(&[0, 0, 0, 1, CODE_SUCCESS]).await
}

/// The plan cut into batches of at most `BATCH_FILES` files and, unless a
/// single file is larger, `BATCH_BYTES` bytes.
fn batches(plan: &[PlannedFile]) -> Vec<&[PlannedFile]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, file) in plan.iter().enumerate() {
        let files = i - start;
        if files > 0 && (files == BATCH_FILES || bytes + file.size > BATCH_BYTES) {
            out.push(&plan[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += file.size;
    }
    if start < plan.len() {
        out.push(&plan[start..]);
    }
    out
}

/// Uploads whole in-memory files (paths already `<udid>/…`) as one batch.
async fn upload_batch(
    conn: &mut Conn,
    files: Vec<(String, Vec<u8>)>,
    progress: f64,
) -> io::Result<()> {
    let bytes: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    send(
        conn,
        vec![
            "DLMessageUploadFiles".into(),
            Value::Dictionary(Dictionary::new()),
            Value::Real(progress),
            bytes.into(),
        ],
    )
    .await?;
    let mut out = Vec::new();
    for (path, data) in &files {
        for name in [path, path] {
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        for chunk in data.chunks(CHUNK) {
            out.extend_from_slice(&(chunk.len() as u32 + 1).to_be_bytes());
            out.push(CODE_FILE_DATA);
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(&[0, 0, 0, 1, CODE_SUCCESS]);
    }
    out.extend_from_slice(&0u32.to_be_bytes());
    conn.write_all(&out).await?;
    conn.flush().await?;
    status_response(conn).await.map(drop)
}

fn meta_file(udid: &str, name: &str, value: &Value) -> (String, Vec<u8>) {
    (format!("{udid}/{name}"), plist_bytes(value))
}

fn plist_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = value.to_writer_binary(&mut out);
    out
}

/// Asks the host for `paths` (DLMessageDownloadFiles) and reads what it has
/// of them, then its status.
pub(crate) async fn download_files(
    conn: &mut Conn,
    paths: &[String],
) -> io::Result<HashMap<String, Vec<u8>>> {
    send(
        conn,
        vec![
            "DLMessageDownloadFiles".into(),
            Value::Array(paths.iter().map(|p| Value::from(p.as_str())).collect()),
            Value::Dictionary(Dictionary::new()),
            Value::Real(0.0),
        ],
    )
    .await?;
    let host = download(conn).await?;
    status_response(conn).await?;
    Ok(host)
}

/// Reads the host's answer to DLMessageDownloadFiles: for each file it has,
/// its path then data blocks; a 0 length ends the list.
async fn download(conn: &mut Conn) -> io::Result<HashMap<String, Vec<u8>>> {
    let mut files = HashMap::new();
    loop {
        let len = conn.read_u32().await?;
        if len == 0 {
            return Ok(files);
        }
        if len > 4096 {
            return Err(invalid(format!("a path of {len} bytes")));
        }
        let mut path = vec![0u8; len as usize];
        conn.read_exact(&mut path).await?;
        let path = String::from_utf8_lossy(&path).into_owned();
        let mut data = Vec::new();
        let mut ok = false;
        loop {
            let n = conn.read_u32().await?;
            if n == 0 {
                return Err(invalid("an empty data block"));
            }
            let code = conn.read_u8().await?;
            let body = u64::from(n - 1);
            if data.len() as u64 + body > MAX_DOWNLOAD {
                return Err(invalid("a file larger than the bound"));
            }
            let mut block = vec![0u8; body as usize];
            conn.read_exact(&mut block).await?;
            match code {
                CODE_FILE_DATA => data.extend_from_slice(&block),
                CODE_SUCCESS => {
                    ok = true;
                    break;
                }
                // An error block: the host does not have the file.
                _ => break,
            }
        }
        if ok {
            files.insert(path, data);
        }
    }
}

/// The host's last finished backup of this phone, as fileID → LastModified.
fn previous_backup(
    host: &HashMap<String, Vec<u8>>,
    udid: &str,
    protection: Option<&Protection>,
) -> Option<HashMap<String, u64>> {
    let status = host.get(&format!("{udid}/Status.plist"))?;
    let status = crate::backup_folder::plists::parse_status(status).ok()?;
    if status.snapshot_state != Some(crate::backup_folder::SnapshotState::Finished) {
        return None;
    }
    // A host that wants a full backup empties Manifest.plist
    // (pymobiledevice3's `--full`).
    if let Some(manifest) = host.get(&format!("{udid}/Manifest.plist"))
        && crate::backup_folder::plists::parse_manifest(manifest).is_err()
    {
        return None;
    }
    let db = host.get(&format!("{udid}/Manifest.db"))?;
    let plain;
    let db = match protection {
        Some(p) => {
            plain = p.decrypt_manifest(db)?;
            &plain
        }
        None => db,
    };
    let (_file, conn) = open_host_db(db)?;
    let mut query = conn.prepare("SELECT fileID, file FROM Files").ok()?;
    let rows = query
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .ok()?;
    let mut known = HashMap::new();
    for (id, blob) in rows.flatten() {
        let modified = mbfile_number(&blob, "LastModified");
        if let Some(modified) = modified {
            known.insert(id, modified);
        }
    }
    Some(known)
}

/// A number field of an archived `MBFile` (the object after `$null`).
pub(crate) fn mbfile_number(blob: &[u8], key: &str) -> Option<u64> {
    let archive = wire::parse_value(blob).ok()?;
    let objects = archive.as_dictionary()?.get("$objects")?.as_array()?;
    objects
        .get(1)?
        .as_dictionary()?
        .get(key)?
        .as_unsigned_integer()
}

/// Keeps file data to a byte rate by sleeping after each piece.
struct Pacer {
    rate: Option<u64>,
    start: Instant,
    sent: u64,
}

impl Pacer {
    fn new(rate: Option<u64>) -> Pacer {
        Pacer {
            rate,
            start: Instant::now(),
            sent: 0,
        }
    }

    async fn sent(&mut self, bytes: u64) {
        self.sent += bytes;
        if let Some(rate) = self.rate.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(self.sent as f64 / rate as f64);
            let elapsed = self.start.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }
}

/// Info and List: the phone reads the host's backup and describes it —
/// its Info.plist, or the files its Manifest.db lists — so a backup can be
/// checked from the host. A backup the phone cannot read is error 205.
pub(crate) async fn describe(
    conn: &mut Conn,
    shared: &Arc<Shared>,
    request: &Dictionary,
    list: bool,
) -> io::Result<()> {
    let udid = request
        .get("SourceIdentifier")
        .or_else(|| request.get("TargetIdentifier"))
        .and_then(Value::as_string)
        .map(str::to_owned)
        .unwrap_or_else(|| shared.config().udid);
    let wanted = format!("{udid}/{}", if list { "Manifest.db" } else { "Info.plist" });
    let host = download_files(conn, std::slice::from_ref(&wanted)).await?;
    let protection = protection(&shared.config(), &udid);
    let content = host.get(&wanted).and_then(|bytes| {
        if list {
            match &protection {
                Some(p) => list_manifest(&p.decrypt_manifest(bytes)?),
                None => list_manifest(bytes),
            }
        } else {
            let value = wire::parse_value(bytes).ok()?;
            let mut xml = Vec::new();
            value.to_writer_xml(&mut xml).ok()?;
            String::from_utf8(xml).ok()
        }
    });
    match content {
        Some(content) => {
            let mut reply = response(0, None);
            reply.insert("Content".into(), format!("{content}\n").into());
            process_message(conn, reply).await
        }
        None => {
            let what = if list {
                "backup database"
            } else {
                "backup properties"
            };
            let description = format!("Error reading {what} (MBErrorDomain/205)");
            process_message(conn, response(205, Some(&description))).await
        }
    }
}

/// A Manifest.db the host sent, opened from a temporary copy under the
/// reader's guard: the host's database is as untrusted as a backup's. The
/// copy goes when the returned file does.
pub(crate) fn open_host_db(db: &[u8]) -> Option<(tempfile::NamedTempFile, rusqlite::Connection)> {
    let file = tempfile::NamedTempFile::new().ok()?;
    std::fs::write(file.path(), db).ok()?;
    let mut conn = rusqlite::Connection::open(file.path()).ok()?;
    crate::backup_folder::manifest_db::guard(&mut conn).ok()?;
    Some((file, conn))
}

/// "Domain,Path,Size" lines for the files a Manifest.db lists.
fn list_manifest(db: &[u8]) -> Option<String> {
    let (_file, conn) = open_host_db(db)?;
    let mut query = conn
        .prepare("SELECT domain, relativePath, file FROM Files WHERE flags = 1 ORDER BY domain, relativePath")
        .ok()?;
    let rows = query
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            ))
        })
        .ok()?;
    let mut out = String::from("Domain,Path,Size");
    for (domain, path, blob) in rows.flatten() {
        let size = mbfile_number(&blob, "Size").unwrap_or(0);
        out.push_str(&format!("\n{domain},{path},{size}"));
    }
    Some(out)
}

/// ChangePassword: with no OldPassword it turns encryption on, with no
/// NewPassword off, with both it changes the password. The phone checks the
/// old password: a wrong one is error 207.
pub(crate) async fn change_password(
    conn: &mut Conn,
    shared: &Arc<Shared>,
    request: &Dictionary,
) -> io::Result<()> {
    let old = request.get("OldPassword").and_then(Value::as_string);
    let new = request.get("NewPassword").and_then(Value::as_string);
    let config = shared.config();
    let right = match (&config.password, old) {
        (None, None) => true,
        (Some(current), Some(given)) => current == given,
        _ => false,
    };
    shared.log(SimEvent::PasswordChange { ok: right });
    if !right {
        return process_message(
            conn,
            response(207, Some("The backup password is not correct.")),
        )
        .await;
    }
    shared.update(|c| {
        c.password = new.map(str::to_owned);
        c.will_encrypt = new.is_some();
    });
    process_message(conn, response(0, None)).await
}
