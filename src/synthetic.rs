//! Synthetic backups in the real on-disk layout — hashed two-hex-digit
//! sub-folders, a Manifest.db (in WAL mode, like the device's) whose rows carry
//! NSKeyedArchiver `MBFile` blobs, and the three plists — for tests,
//! benchmarks and `unstuck demo`. Content is a pure function of a seed, so the
//! same description always gives the same bytes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use plist::{Dictionary, Uid, Value};
use rusqlite::Connection;
use sha1::{Digest, Sha1};

/// What state the written folder is left in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Status.plist `finished`.
    Complete,
    /// Status.plist `uploading`, with a `Snapshot/` folder, as a device leaves
    /// it mid-transfer.
    Uploading,
    /// A finished backup followed by a run that died early: a 0-byte
    /// Manifest.plist.
    EmptyManifestPlist,
}

/// Which file list to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    ManifestDb,
    /// iOS 9 and earlier.
    ManifestMbdb,
}

/// A description of a backup to write.
#[derive(Debug, Clone)]
pub struct SyntheticBackup {
    pub udid: String,
    pub device_name: String,
    pub product_type: String,
    pub ios_version: String,
    pub build_version: String,
    pub files: usize,
    pub file_size: usize,
    pub seed: u64,
    pub encrypted: bool,
    pub date: Timestamp,
    pub finish: Finish,
    pub format: ListFormat,
}

impl SyntheticBackup {
    /// A small complete backup of an iPhone on iOS 18.1, dated `date`.
    pub fn new(udid: &str, date: Timestamp) -> SyntheticBackup {
        SyntheticBackup {
            udid: udid.to_owned(),
            device_name: "Test iPhone".to_owned(),
            product_type: "iPhone15,2".to_owned(),
            ios_version: "18.1".to_owned(),
            build_version: "22B83".to_owned(),
            files: 20,
            file_size: 256,
            seed: 1,
            encrypted: false,
            date,
            finish: Finish::Complete,
            format: ListFormat::ManifestDb,
        }
    }

    /// The n-th file's domain and relative path.
    pub fn file_name(&self, n: usize) -> (String, String) {
        let domain = match n % 4 {
            0 => "HomeDomain".to_owned(),
            1 => "CameraRollDomain".to_owned(),
            _ => format!("AppDomain-com.example.app{}", n % 7),
        };
        (domain, format!("Library/Data/file-{n:06}.dat"))
    }

    /// Writes the backup to `root/<udid>/` and returns that folder. An existing
    /// folder of that name is an error: this never writes over a backup.
    pub fn write(&self, root: &Path) -> io::Result<PathBuf> {
        let folder = root.join(&self.udid);
        fs::create_dir_all(root)?;
        fs::create_dir(&folder)?;

        let mut rows = Vec::with_capacity(self.files);
        for n in 0..self.files {
            let (domain, path) = self.file_name(n);
            let id = file_id(&domain, &path);
            let dir = folder.join(&id[..2]);
            fs::create_dir_all(&dir)?;
            let data = file_content(self.seed, n as u64, self.file_size);
            fs::write(dir.join(&id), &data)?;
            rows.push(ManifestRow {
                id,
                domain,
                path,
                size: data.len() as u64,
                modified: 1_700_000_000,
                encryption_key: None,
            });
        }

        match self.format {
            ListFormat::ManifestDb => {
                write_manifest_db(&folder.join("Manifest.db"), &rows).map_err(io::Error::other)?
            }
            ListFormat::ManifestMbdb => {
                let records: Vec<(&str, u16, u64)> = rows
                    .iter()
                    .map(|row| (row.path.as_str(), 0o100644, row.size))
                    .collect();
                fs::write(
                    folder.join("Manifest.mbdb"),
                    crate::backup_folder::mbdb::encode(&records),
                )?;
            }
        }
        write_plist(&folder.join("Info.plist"), &self.info_plist(), false)?;
        let snapshot_state = match self.finish {
            Finish::Uploading => "uploading",
            Finish::Complete | Finish::EmptyManifestPlist => "finished",
        };
        write_plist(
            &folder.join("Status.plist"),
            &self.status_plist(snapshot_state),
            true,
        )?;
        match self.finish {
            Finish::EmptyManifestPlist => fs::write(folder.join("Manifest.plist"), b"")?,
            _ => write_plist(&folder.join("Manifest.plist"), &self.manifest_plist(), true)?,
        }
        if self.finish == Finish::Uploading {
            let snapshot = folder.join("Snapshot");
            fs::create_dir(&snapshot)?;
            fs::write(snapshot.join("Status.plist"), b"partial")?;
        }
        // Stamp what the reader dates activity by with the backup's date, as
        // if the files had been written then.
        let hashed = rows.iter().map(|row| folder.join(&row.id[..2]));
        let top = [
            "Info.plist",
            "Status.plist",
            "Manifest.plist",
            "Manifest.db",
            "Manifest.mbdb",
            "Snapshot",
            "",
        ];
        for path in hashed.chain(top.iter().map(|name| folder.join(name))) {
            set_modified(&path, self.date);
        }
        Ok(folder)
    }

    pub(crate) fn info_plist(&self) -> Value {
        let mut d = Dictionary::new();
        d.insert("Build Version".into(), self.build_version.clone().into());
        d.insert("Device Name".into(), self.device_name.clone().into());
        d.insert("Display Name".into(), self.device_name.clone().into());
        d.insert("GUID".into(), "00000000000000000000000000000000".into());
        d.insert("Last Backup Date".into(), plist_date(self.date));
        d.insert("Product Type".into(), self.product_type.clone().into());
        d.insert("Product Version".into(), self.ios_version.clone().into());
        d.insert("Serial Number".into(), "SYNTHETIC01".into());
        d.insert("Target Identifier".into(), self.udid.clone().into());
        d.insert("Target Type".into(), "Device".into());
        d.insert(
            "Unique Identifier".into(),
            self.udid.to_ascii_uppercase().into(),
        );
        Value::Dictionary(d)
    }

    pub(crate) fn status_plist(&self, snapshot_state: &str) -> Value {
        let mut d = Dictionary::new();
        d.insert("BackupState".into(), "new".into());
        d.insert("Date".into(), plist_date(self.date));
        d.insert("IsFullBackup".into(), false.into());
        d.insert("SnapshotState".into(), snapshot_state.into());
        d.insert(
            "UUID".into(),
            format!(
                "5F7A0C8E-0000-4000-8000-{:012X}",
                self.seed & 0xFFFF_FFFF_FFFF
            )
            .into(),
        );
        d.insert("Version".into(), "3.3".into());
        Value::Dictionary(d)
    }

    pub(crate) fn manifest_plist(&self) -> Value {
        let mut lockdown = Dictionary::new();
        lockdown.insert("BuildVersion".into(), self.build_version.clone().into());
        lockdown.insert("DeviceName".into(), self.device_name.clone().into());
        lockdown.insert("ProductType".into(), self.product_type.clone().into());
        lockdown.insert("ProductVersion".into(), self.ios_version.clone().into());
        lockdown.insert("SerialNumber".into(), "SYNTHETIC01".into());
        lockdown.insert("UniqueDeviceID".into(), self.udid.clone().into());
        let mut d = Dictionary::new();
        // Unencrypted backups carry a keybag too; only IsEncrypted tells.
        d.insert(
            "BackupKeyBag".into(),
            Value::Data(file_content(self.seed ^ 0xBA6, 0, 64)),
        );
        d.insert("Date".into(), plist_date(self.date));
        d.insert("IsEncrypted".into(), self.encrypted.into());
        d.insert("Lockdown".into(), Value::Dictionary(lockdown));
        d.insert("SystemDomainsVersion".into(), "24.0".into());
        d.insert("Version".into(), "10.0".into());
        d.insert("WasPasscodeSet".into(), true.into());
        Value::Dictionary(d)
    }
}

/// A backup file's name: the SHA-1 of `domain-relativePath`, in hex.
pub fn file_id(domain: &str, relative_path: &str) -> String {
    let digest = Sha1::digest(format!("{domain}-{relative_path}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of file `n` of a backup made from `seed`: `len` pseudo-random
/// bytes (splitmix64), the same on every call.
pub fn file_content(seed: u64, n: u64, len: usize) -> Vec<u8> {
    content_chunk(seed, n, 0, len)
}

/// Bytes `offset..offset + len` of what [`file_content`] gives, computed
/// without the bytes before them, so a large file can be produced in pieces.
/// `offset` must be a multiple of 8.
pub fn content_chunk(seed: u64, n: u64, offset: u64, len: usize) -> Vec<u8> {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let base = seed ^ n.wrapping_mul(GOLDEN);
    let first_word = offset / 8;
    let mut out = Vec::with_capacity(len + 8);
    let mut word = first_word;
    while out.len() < len {
        word += 1;
        let mut z = base.wrapping_add(word.wrapping_mul(GOLDEN));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// One row of a Manifest.db.
pub(crate) struct ManifestRow {
    pub id: String,
    pub domain: String,
    pub path: String,
    pub size: u64,
    /// Seconds since 1970, as `MBFile.LastModified`.
    pub modified: u64,
    /// An encrypted backup's file key, wrapped (`MBFile.EncryptionKey`).
    pub encryption_key: Option<Vec<u8>>,
}

pub(crate) fn write_manifest_db(path: &Path, rows: &[ManifestRow]) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(
        "CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB);
         CREATE INDEX FilesDomainIdx ON Files(domain);
         CREATE INDEX FilesRelativePathIdx ON Files(relativePath);
         CREATE INDEX FilesFlagsIdx ON Files(flags);
         CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB);",
    )?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO Files (fileID, domain, relativePath, flags, file) VALUES (?1, ?2, ?3, 1, ?4)",
        )?;
        for (inode, row) in rows.iter().enumerate() {
            insert.execute(rusqlite::params![
                row.id,
                row.domain,
                row.path,
                mbfile_blob(row, inode as u64)
            ])?;
        }
    }
    tx.commit()?;
    // A clean close checkpoints the WAL and removes -wal/-shm, leaving the
    // header in WAL mode as on a real backup.
    conn.close().map_err(|(_, e)| e)
}

/// An `MBFile` archived the way the device archives it (NSKeyedArchiver).
pub(crate) fn mbfile_blob(row: &ManifestRow, inode: u64) -> Vec<u8> {
    let (relative_path, size, modified) = (row.path.as_str(), row.size, row.modified);
    let mut file = Dictionary::new();
    file.insert("$class".into(), Value::Uid(Uid::new(3)));
    file.insert("Birth".into(), 1_700_000_000u64.into());
    file.insert("Flags".into(), 0u64.into());
    file.insert("GroupID".into(), 501u64.into());
    file.insert("InodeNumber".into(), inode.into());
    file.insert("LastModified".into(), modified.into());
    file.insert("LastStatusChange".into(), 1_700_000_000u64.into());
    file.insert("Mode".into(), 0o100644u64.into());
    file.insert("ProtectionClass".into(), 3u64.into());
    file.insert("RelativePath".into(), Value::Uid(Uid::new(2)));
    file.insert("Size".into(), size.into());
    file.insert("UserID".into(), 501u64.into());
    let mut class = Dictionary::new();
    class.insert("$classname".into(), "MBFile".into());
    class.insert(
        "$classes".into(),
        Value::Array(vec!["MBFile".into(), "NSObject".into()]),
    );
    let mut objects = vec![
        "$null".into(),
        Value::Dictionary(file),
        relative_path.into(),
        Value::Dictionary(class),
    ];
    // An encrypted backup's file key, as an NSMutableData object.
    if let (Some(key), Some(Value::Dictionary(file))) = (&row.encryption_key, objects.get_mut(1)) {
        file.insert("EncryptionKey".into(), Value::Uid(Uid::new(4)));
        let mut data = Dictionary::new();
        data.insert("$class".into(), Value::Uid(Uid::new(5)));
        data.insert("NS.data".into(), Value::Data(key.clone()));
        let mut class = Dictionary::new();
        class.insert("$classname".into(), "NSMutableData".into());
        class.insert(
            "$classes".into(),
            Value::Array(vec![
                "NSMutableData".into(),
                "NSData".into(),
                "NSObject".into(),
            ]),
        );
        objects.push(Value::Dictionary(data));
        objects.push(Value::Dictionary(class));
    }
    let mut top = Dictionary::new();
    top.insert("root".into(), Value::Uid(Uid::new(1)));
    let mut archive = Dictionary::new();
    archive.insert("$archiver".into(), "NSKeyedArchiver".into());
    archive.insert("$objects".into(), Value::Array(objects));
    archive.insert("$top".into(), Value::Dictionary(top));
    archive.insert("$version".into(), 100_000u64.into());
    let mut out = Vec::new();
    // Writing a plist into a Vec cannot fail.
    let _ = Value::Dictionary(archive).to_writer_binary(&mut out);
    out
}

/// A plist `<date>` of whole seconds: Python's plistlib (iOSbackup,
/// pyiosbackup, pymobiledevice3, mvt) rejects fractions of a second, and
/// CoreFoundation expects the `Z` right after the seconds.
pub(crate) fn plist_date(t: Timestamp) -> Value {
    let whole = Timestamp::from_second(t.as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    let time = std::time::SystemTime::try_from(whole).unwrap_or(std::time::UNIX_EPOCH);
    Value::Date(time.into())
}

/// Sets a file's or folder's modification time; absent paths and platforms
/// that cannot open a folder as a file are passed over.
fn set_modified(path: &Path, t: Timestamp) {
    let Ok(time) = std::time::SystemTime::try_from(t) else {
        return;
    };
    if let Ok(file) = fs::File::open(path) {
        let _ = file.set_modified(time);
    }
}

fn write_plist(path: &Path, value: &Value, binary: bool) -> io::Result<()> {
    let file = io::BufWriter::new(fs::File::create(path)?);
    let written = if binary {
        value.to_writer_binary(file)
    } else {
        value.to_writer_xml(file)
    };
    written.map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_deterministic_and_distinct() {
        assert_eq!(file_content(7, 3, 100), file_content(7, 3, 100));
        assert_ne!(file_content(7, 3, 100), file_content(7, 4, 100));
        assert_eq!(file_content(7, 3, 13).len(), 13);
        assert!(file_content(7, 3, 0).is_empty());
    }

    #[test]
    fn chunks_join_into_the_whole_file() {
        let whole = file_content(3, 9, 1000);
        let mut joined = content_chunk(3, 9, 0, 512);
        joined.extend(content_chunk(3, 9, 512, 488));
        assert_eq!(joined, whole);
    }

    #[test]
    fn file_ids_are_apples() {
        // Computed with Python's hashlib: sha1("HomeDomain-Library/Preferences/a.plist").
        assert_eq!(
            file_id("HomeDomain", "Library/Preferences/a.plist"),
            "6638dce0ce8fa5f6c15c073af212b1d85935dba8"
        );
    }

    #[test]
    fn never_writes_over_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let backup = SyntheticBackup::new(&"a".repeat(40), Timestamp::UNIX_EPOCH);
        backup.write(dir.path()).unwrap();
        assert!(backup.write(dir.path()).is_err());
    }
}
