//! The three metadata plists of a backup folder — Info.plist, Status.plist and
//! Manifest.plist — turned into plain structs. XML and binary plists are both
//! accepted, each parsed within `Budget::FILE`; a value of the wrong type
//! counts as absent, never as a panic.

use std::path::Path;

use jiff::Timestamp;
use plist::{Dictionary, Value};

use crate::plist_budget::{self, Budget, PlistError, ReadError};

/// What Info.plist says. iTunes, Finder and idevicebackup2 write
/// "Product Version" style keys; some third-party tools write "ProductVersion":
/// both are read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InfoPlist {
    pub device_name: Option<String>,
    pub product_type: Option<String>,
    pub product_version: Option<String>,
    pub build_version: Option<String>,
    pub target_identifier: Option<String>,
    pub unique_identifier: Option<String>,
    /// Written by tools *before* a backup starts, so it is not proof of a
    /// complete backup; kept for display only.
    pub last_backup_date: Option<Timestamp>,
}

/// Status.plist, which the device rewrites as a backup moves through its phases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusPlist {
    pub snapshot_state: Option<SnapshotState>,
    pub backup_state: Option<String>,
    pub is_full_backup: Option<bool>,
    pub date: Option<Timestamp>,
    pub uuid: Option<String>,
    pub version: Option<String>,
}

/// The `SnapshotState` values the device writes into Status.plist.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotState {
    Uploading,
    Moving,
    Removing,
    Finished,
    /// A value this version of Unstuck does not know.
    Other(String),
}

impl SnapshotState {
    fn parse(s: &str) -> SnapshotState {
        match s {
            "uploading" => SnapshotState::Uploading,
            "moving" => SnapshotState::Moving,
            "removing" => SnapshotState::Removing,
            "finished" => SnapshotState::Finished,
            other => SnapshotState::Other(other.to_owned()),
        }
    }

    /// Whether a backup was under way when Status.plist was written
    /// (uploading, moving or removing). A value Unstuck does not know is not
    /// taken for one.
    pub fn is_unfinished(&self) -> bool {
        matches!(
            self,
            SnapshotState::Uploading | SnapshotState::Moving | SnapshotState::Removing
        )
    }

    pub fn as_str(&self) -> &str {
        match self {
            SnapshotState::Uploading => "uploading",
            SnapshotState::Moving => "moving",
            SnapshotState::Removing => "removing",
            SnapshotState::Finished => "finished",
            SnapshotState::Other(s) => s,
        }
    }
}

/// Manifest.plist. `BackupKeyBag` is present in unencrypted backups too, so
/// only `IsEncrypted` says whether a backup is encrypted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestPlist {
    pub is_encrypted: Option<bool>,
    pub was_passcode_set: Option<bool>,
    pub date: Option<Timestamp>,
    /// The backup format's version ("9.1", "10.0"), not the iOS version.
    pub version: Option<String>,
    pub device_name: Option<String>,
    pub product_type: Option<String>,
    pub product_version: Option<String>,
    pub build_version: Option<String>,
    pub unique_device_id: Option<String>,
    /// The keybag (random bytes when the backup is not encrypted).
    pub backup_key_bag: Option<Vec<u8>>,
    /// The key of an encrypted Manifest.db: its class (4 bytes, little
    /// endian), then the key wrapped with that class's key.
    pub manifest_key: Option<Vec<u8>>,
}

/// Parses the bytes of an Info.plist.
pub fn parse_info(bytes: &[u8]) -> Result<InfoPlist, PlistError> {
    info(plist_budget::parse(bytes, Budget::FILE)?)
}

/// Reads the Info.plist at `path`.
pub fn read_info(path: &Path) -> Result<InfoPlist, ReadError> {
    read(path, info)
}

fn info(value: Value) -> Result<InfoPlist, PlistError> {
    let dict = dictionary(value)?;
    let get = |key: &str| lookup(&dict, key);
    Ok(InfoPlist {
        device_name: string(get("Device Name")).or_else(|| string(get("Display Name"))),
        product_type: string(get("Product Type")),
        product_version: string(get("Product Version")),
        build_version: string(get("Build Version")),
        target_identifier: string(get("Target Identifier")),
        unique_identifier: string(get("Unique Identifier")),
        last_backup_date: date(get("Last Backup Date")),
    })
}

/// Parses the bytes of a Status.plist.
pub fn parse_status(bytes: &[u8]) -> Result<StatusPlist, PlistError> {
    status(plist_budget::parse(bytes, Budget::FILE)?)
}

/// Reads the Status.plist at `path`.
pub fn read_status(path: &Path) -> Result<StatusPlist, ReadError> {
    read(path, status)
}

fn status(value: Value) -> Result<StatusPlist, PlistError> {
    let dict = dictionary(value)?;
    let get = |key: &str| lookup(&dict, key);
    Ok(StatusPlist {
        snapshot_state: string(get("SnapshotState")).map(|s| SnapshotState::parse(&s)),
        backup_state: string(get("BackupState")),
        is_full_backup: get("IsFullBackup").and_then(Value::as_boolean),
        date: date(get("Date")),
        uuid: string(get("UUID")),
        version: string(get("Version")),
    })
}

/// Parses the bytes of a Manifest.plist.
pub fn parse_manifest(bytes: &[u8]) -> Result<ManifestPlist, PlistError> {
    manifest(plist_budget::parse(bytes, Budget::FILE)?)
}

/// Reads the Manifest.plist at `path`.
pub fn read_manifest(path: &Path) -> Result<ManifestPlist, ReadError> {
    read(path, manifest)
}

fn manifest(value: Value) -> Result<ManifestPlist, PlistError> {
    let dict = dictionary(value)?;
    let get = |key: &str| lookup(&dict, key);
    let lockdown = get("Lockdown").and_then(Value::as_dictionary);
    let from_lockdown = |key: &str| lockdown.and_then(|d| string(lookup(d, key)));
    Ok(ManifestPlist {
        is_encrypted: get("IsEncrypted").and_then(Value::as_boolean),
        was_passcode_set: get("WasPasscodeSet").and_then(Value::as_boolean),
        date: date(get("Date")),
        version: string(get("Version")),
        device_name: from_lockdown("DeviceName"),
        product_type: from_lockdown("ProductType"),
        product_version: from_lockdown("ProductVersion"),
        build_version: from_lockdown("BuildVersion"),
        unique_device_id: from_lockdown("UniqueDeviceID"),
        backup_key_bag: get("BackupKeyBag")
            .and_then(Value::as_data)
            .map(<[u8]>::to_vec),
        manifest_key: get("ManifestKey")
            .and_then(Value::as_data)
            .map(<[u8]>::to_vec),
    })
}

/// Reads the file at `path` within `Budget::FILE` and interprets it.
fn read<T>(path: &Path, interpret: fn(Value) -> Result<T, PlistError>) -> Result<T, ReadError> {
    plist_budget::read_file(path, Budget::FILE).and_then(|value| {
        interpret(value).map_err(|source| ReadError::Plist {
            path: path.to_path_buf(),
            source,
        })
    })
}

fn dictionary(value: Value) -> Result<Dictionary, PlistError> {
    match value {
        Value::Dictionary(dict) => Ok(dict),
        other => Err(PlistError::Malformed(format!(
            "the top-level value is {}, not a dictionary",
            kind_name(&other)
        ))),
    }
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "an array",
        Value::Boolean(_) => "a boolean",
        Value::Data(_) => "data",
        Value::Date(_) => "a date",
        Value::Real(_) => "a real number",
        Value::Integer(_) => "an integer",
        Value::String(_) => "a string",
        Value::Uid(_) => "a UID",
        _ => "an unknown value",
    }
}

/// Looks `key` up exactly, then with spaces removed and case ignored, so that
/// "Product Version" also finds "ProductVersion" and "productVersion".
fn lookup<'a>(dict: &'a Dictionary, key: &str) -> Option<&'a Value> {
    if let Some(value) = dict.get(key) {
        return Some(value);
    }
    let wanted = squash(key);
    dict.iter()
        .find(|(k, _)| squash(k) == wanted)
        .map(|(_, v)| v)
}

fn squash(key: &str) -> String {
    key.chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn string(value: Option<&Value>) -> Option<String> {
    let s = value?.as_string()?.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn date(value: Option<&Value>) -> Option<Timestamp> {
    let system_time: std::time::SystemTime = value?.as_date()?.into();
    Timestamp::try_from(system_time).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(body: &str) -> Vec<u8> {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>{body}</dict></plist>"#
        )
        .into_bytes()
    }

    #[test]
    fn info_accepts_both_key_styles() {
        let itunes = parse_info(&xml("<key>Product Version</key><string>17.4</string>\
             <key>Device Name</key><string>Ann's iPhone</string>"))
        .unwrap();
        let third_party = parse_info(&xml("<key>ProductVersion</key><string>17.4</string>\
             <key>DeviceName</key><string>Ann's iPhone</string>"))
        .unwrap();
        assert_eq!(itunes, third_party);
        assert_eq!(itunes.product_version.as_deref(), Some("17.4"));
    }

    #[test]
    fn wrong_types_count_as_absent() {
        let info = parse_info(&xml("<key>Product Version</key><integer>17</integer>\
             <key>Last Backup Date</key><string>yesterday</string>"))
        .unwrap();
        assert_eq!(info, InfoPlist::default());
    }

    #[test]
    fn non_dictionary_root_is_an_error() {
        let bytes = br#"<?xml version="1.0"?><plist version="1.0"><array/></plist>"#;
        let err = parse_status(bytes).unwrap_err();
        assert!(err.to_string().contains("not a dictionary"), "{err}");
    }

    #[test]
    fn hostile_plists_are_refused_within_the_file_budget() {
        let err = parse_status(&crate::plist_budget::tests::laughs(30, 4)).unwrap_err();
        assert!(
            err.to_string().contains("more than 1000000 values"),
            "{err}"
        );
        let deep = xml(&format!("<key>A</key>{}", "<array>".repeat(200_000)));
        let err = parse_info(&deep).unwrap_err();
        assert!(err.to_string().contains("nests deeper than 64"), "{err}");
    }

    #[test]
    fn status_states() {
        for (text, expected) in [
            ("uploading", SnapshotState::Uploading),
            ("moving", SnapshotState::Moving),
            ("removing", SnapshotState::Removing),
            ("finished", SnapshotState::Finished),
            ("sideways", SnapshotState::Other("sideways".into())),
        ] {
            let status = parse_status(&xml(&format!(
                "<key>SnapshotState</key><string>{text}</string>"
            )))
            .unwrap();
            assert_eq!(status.snapshot_state, Some(expected));
        }
    }

    #[test]
    fn truncated_and_empty_input_is_an_error() {
        let full = xml("<key>SnapshotState</key><string>finished</string>");
        assert!(parse_status(&full[..full.len() / 2]).is_err());
        assert!(parse_status(b"").is_err());
        assert!(parse_status(b"bplist00").is_err());
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::super::*;

        fn sample_binary() -> Vec<u8> {
            let mut d = Dictionary::new();
            d.insert("SnapshotState".into(), "finished".into());
            d.insert("IsFullBackup".into(), true.into());
            d.insert("Version".into(), "3.3".into());
            d.insert(
                "Lockdown".into(),
                Value::Dictionary(Dictionary::from_iter([(
                    "ProductVersion".to_owned(),
                    Value::from("18.1"),
                )])),
            );
            let mut out = Vec::new();
            Value::Dictionary(d).to_writer_binary(&mut out).unwrap();
            out
        }

        fn parse_all(bytes: &[u8]) {
            let _ = parse_info(bytes);
            let _ = parse_status(bytes);
            let _ = parse_manifest(bytes);
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                parse_all(&bytes);
            }

            #[test]
            fn binary_header_then_garbage_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
                let mut bytes = b"bplist00".to_vec();
                bytes.extend(tail);
                parse_all(&bytes);
            }

            #[test]
            fn mangled_real_plists_never_panic(
                cut in 0usize..200,
                flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..6),
            ) {
                let mut bytes = sample_binary();
                bytes.truncate(bytes.len().saturating_sub(cut % 8));
                for (at, xor) in flips {
                    let i = at % bytes.len();
                    bytes[i] ^= xor;
                }
                parse_all(&bytes);
            }
        }
    }
}
