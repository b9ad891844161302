//! Restore, the device side of mobilebackup2's `Restore`: the phone pulls the
//! backup from the host — Status.plist, Manifest.plist, Manifest.db and
//! Info.plist first, then every file the Manifest.db lists, in batches of
//! `<source>/<xx>/<fileID>` — decrypts what is encrypted with the password
//! in the options, checks each file against what it holds itself, answers
//! ErrorCode 0, and restarts unless told not to (`RestoreShouldReboot`).
//! A file the host does not have is error 205; Find My iPhone on is 211.
//! Source: libimobiledevice `tools/idevicebackup2.c` (the host's side) and
//! the device logs quoted in libimobiledevice issues #801 and #438.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use plist::{Dictionary, Value};
use sha2::{Digest, Sha256};

use super::backup2::{
    content_seed, download_files, mbfile_number, open_host_db, process_message, response, template,
};
use super::conn::Conn;
use super::{Shared, SimEvent};
use crate::backup_folder::keybag::{ClassKeys, Keybag};
use crate::backup_folder::plists;
use crate::synthetic;

/// Files the phone asks for in one DLMessageDownloadFiles.
const BATCH: usize = 64;

/// What a restore found, file by file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreReport {
    /// Files received and stored.
    pub files: usize,
    /// Of them, files whose bytes are what the phone holds for them.
    pub matching: usize,
    /// Files the Manifest.db lists that the host did not send.
    pub missing: usize,
}

pub(crate) async fn restore(
    conn: &mut Conn,
    shared: &Arc<Shared>,
    request: &Dictionary,
) -> io::Result<()> {
    let config = shared.config();
    let source = request
        .get("SourceIdentifier")
        .or_else(|| request.get("TargetIdentifier"))
        .and_then(Value::as_string)
        .unwrap_or(&config.udid)
        .to_owned();
    let options = request
        .get("Options")
        .and_then(Value::as_dictionary)
        .cloned()
        .unwrap_or_default();
    let flag = |key: &str| options.get(key).and_then(Value::as_boolean);
    if config.find_my_iphone {
        let text = "Find My iPhone must be disabled before restoring (MBErrorDomain/211)";
        return process_message(conn, response(211, Some(text))).await;
    }

    let wanted = [
        "Status.plist",
        "Manifest.plist",
        "Manifest.db",
        "Info.plist",
    ]
    .map(|f| format!("{source}/{f}"));
    let meta = download_files(conn, &wanted).await?;
    let get = |name: &str| meta.get(&format!("{source}/{name}"));
    let finished = get("Status.plist")
        .and_then(|b| plists::parse_status(b).ok())
        .is_some_and(|s| s.snapshot_state == Some(crate::backup_folder::SnapshotState::Finished));
    let manifest = get("Manifest.plist").and_then(|b| plists::parse_manifest(b).ok());
    let (Some(manifest), Some(db), true) = (manifest, get("Manifest.db"), finished) else {
        let text = "Error reading the backup's Status.plist, Manifest.plist or Manifest.db (MBErrorDomain/205)";
        return process_message(conn, response(205, Some(text))).await;
    };

    // An encrypted backup opens only with its password.
    let mut keys = None;
    let db = if manifest.is_encrypted == Some(true) {
        let password = options
            .get("Password")
            .and_then(Value::as_string)
            .unwrap_or("");
        let opened = manifest
            .backup_key_bag
            .as_deref()
            .and_then(|bag| Keybag::parse(bag).ok())
            .and_then(|bag| bag.unlock(password.as_bytes()));
        let Some(class_keys) = opened else {
            return process_message(
                conn,
                response(207, Some("The backup password is not correct.")),
            )
            .await;
        };
        let plain = manifest
            .manifest_key
            .as_deref()
            .and_then(|blob| class_keys.unwrap(blob))
            .and_then(|key| super::protection::decrypt(&key, db));
        keys = Some(class_keys);
        match plain {
            Some(plain) => plain,
            None => {
                let text = "Error decrypting the backup's Manifest.db (MBErrorDomain/205)";
                return process_message(conn, response(205, Some(text))).await;
            }
        }
    } else {
        db.clone()
    };
    let Some(rows) = files_of(&db) else {
        let text = "Error reading backup database (MBErrorDomain/205)";
        return process_message(conn, response(205, Some(text))).await;
    };

    let template = template(&config, &config.udid);
    let mut report = RestoreReport::default();
    for batch in rows.chunks(BATCH) {
        let paths: Vec<String> = batch
            .iter()
            .map(|r| format!("{source}/{}/{}", &r.id[..2.min(r.id.len())], r.id))
            .collect();
        let got = download_files(conn, &paths).await?;
        for (row, path) in batch.iter().zip(&paths) {
            let Some(body) = got.get(path) else {
                report.missing += 1;
                continue;
            };
            let plain = match (&keys, &row.encryption_key) {
                (Some(keys), Some(blob)) => decrypt_file(keys, blob, body),
                (None, None) => Some(body.clone()),
                _ => None,
            };
            report.files += 1;
            if plain.is_some_and(|plain| holds(&config, &template, row, &plain)) {
                report.matching += 1;
            }
        }
    }
    shared.log(SimEvent::Restored(report));
    if report.missing > 0 {
        let text = format!(
            "Multiple errors downloading files: {} of {} were missing (MBErrorDomain/205)",
            report.missing,
            rows.len()
        );
        return process_message(conn, response(205, Some(&text))).await;
    }
    process_message(conn, response(0, None)).await?;
    if flag("RestoreShouldReboot") != Some(false) {
        // The files go into place while the phone restarts.
        shared.log(SimEvent::Rebooted);
        let shared = shared.clone();
        let back_after = config.reboot_time;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            shared.detach();
            tokio::time::sleep(back_after).await;
            shared.attach();
        });
    }
    Ok(())
}

/// A file row of Manifest.db: what the phone needs to take it back.
struct Row {
    id: String,
    path: String,
    size: u64,
    modified: u64,
    encryption_key: Option<Vec<u8>>,
}

/// The regular files (flags 1) a Manifest.db lists.
fn files_of(db: &[u8]) -> Option<Vec<Row>> {
    let (_file, conn) = open_host_db(db)?;
    let mut query = conn
        .prepare("SELECT fileID, relativePath, file FROM Files WHERE flags = 1 ORDER BY fileID")
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
    let mut out = Vec::new();
    for (id, path, blob) in rows.flatten() {
        // Only a file ID of hex digits names a path inside the backup.
        if id.len() < 2 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        out.push(Row {
            id,
            path,
            size: mbfile_number(&blob, "Size").unwrap_or(0),
            modified: mbfile_number(&blob, "LastModified").unwrap_or(0),
            encryption_key: mbfile_encryption_key(&blob),
        });
    }
    Some(out)
}

/// `MBFile.EncryptionKey`'s data (an NSMutableData object's `NS.data`).
fn mbfile_encryption_key(blob: &[u8]) -> Option<Vec<u8>> {
    let archive = crate::wire::parse_value(blob).ok()?;
    let objects = archive.as_dictionary()?.get("$objects")?.as_array()?;
    let uid = objects
        .get(1)?
        .as_dictionary()?
        .get("EncryptionKey")?
        .as_uid()?;
    let object = objects.get(usize::try_from(uid.get()).ok()?)?;
    object
        .as_dictionary()?
        .get("NS.data")?
        .as_data()
        .map(<[u8]>::to_vec)
}

fn decrypt_file(keys: &ClassKeys, blob: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let key = keys.unwrap(blob)?;
    super::protection::decrypt(&key, body)
}

/// Whether `plain` is what this phone holds as the file of `row` in the
/// version the backup has (the phone's content is a function of the file's
/// number and its last change).
fn holds(
    config: &super::SimConfig,
    template: &synthetic::SyntheticBackup,
    row: &Row,
    plain: &[u8],
) -> bool {
    let Some(n) = row
        .path
        .strip_prefix("Library/Data/file-")
        .and_then(|rest| rest.strip_suffix(".dat"))
        .and_then(|digits| digits.parse::<usize>().ok())
    else {
        return false;
    };
    let (domain, path) = template.file_name(n);
    if synthetic::file_id(&domain, &path) != row.id || plain.len() as u64 != row.size {
        return false;
    }
    if row.modified < 1_700_000_000 {
        return false;
    }
    let expected =
        synthetic::content_chunk(content_seed(config, row.modified), n as u64, 0, plain.len());
    Sha256::digest(&expected) == Sha256::digest(plain)
}
