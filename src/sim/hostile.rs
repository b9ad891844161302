//! A phone that attacks the host during a backup, one way per [`Hostile`]:
//! paths that escape its folder, a copy over a file the host's snapshot
//! shares, plists built to explode or to nest without end, and lengths that
//! claim gigabytes. Real phones do none of this; the host must refuse each
//! with its last complete backup intact and its memory bounded.

use plist::{Dictionary, Value};

/// Another phone's folder, named by the attacks that reach for it.
pub const OTHER_UDID: &str = "00008030-00AABBCCDDEEFF00";

/// One attack, made once the backup has started (after the host said how
/// much space it has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// DownloadFiles of another phone's Manifest.plist.
    ReadOtherPhone,
    /// RemoveItems of another phone's whole folder.
    RemoveOtherPhone,
    /// RemoveItems of `../`: the backup root itself.
    RemoveParent,
    /// RemoveItems of its own whole folder.
    RemoveOwnFolder,
    /// UploadFiles to `<UDID>/../escaped`.
    WriteOutside,
    /// UploadFiles to an absolute path.
    WriteAbsolute,
    /// UploadFiles to `<UDID>/C:/escaped` (a drive on Windows).
    WriteDrive,
    /// UploadFiles to `<UDID>/zz/escaped`, for a host whose `zz` is a link.
    WriteThroughLink,
    /// MoveItems of its Status.plist to `../stolen`.
    MoveOutside,
    /// CopyItem of its Status.plist onto another phone's.
    CopyOutside,
    /// CopyItem of Status.plist over Manifest.db (a file the host's
    /// snapshot shares), then the backup fails (ErrorCode 1).
    CopyOverShared,
    /// A DeviceLink message that is a 469-byte binary plist whose arrays
    /// share references: 10^30 values when expanded.
    BillionLaughs,
    /// A DeviceLink message of 200,000 nested arrays.
    DeepNesting,
    /// A frame that claims 4 GiB.
    HugeFrame,
    /// A file block that claims 4 GiB, then the connection ends.
    HugeBlock,
}

impl Hostile {
    /// Every attack with its scenario name (`hostile-…`).
    pub const ALL: [(Hostile, &'static str); 15] = [
        (Hostile::ReadOtherPhone, "read-other-phone"),
        (Hostile::RemoveOtherPhone, "remove-other-phone"),
        (Hostile::RemoveParent, "remove-parent"),
        (Hostile::RemoveOwnFolder, "remove-own-folder"),
        (Hostile::WriteOutside, "write-outside"),
        (Hostile::WriteAbsolute, "write-absolute"),
        (Hostile::WriteDrive, "write-drive"),
        (Hostile::WriteThroughLink, "write-through-link"),
        (Hostile::MoveOutside, "move-outside"),
        (Hostile::CopyOutside, "copy-outside"),
        (Hostile::CopyOverShared, "copy-over-shared"),
        (Hostile::BillionLaughs, "billion-laughs"),
        (Hostile::DeepNesting, "deep-nesting"),
        (Hostile::HugeFrame, "huge-frame"),
        (Hostile::HugeBlock, "huge-block"),
    ];
}

/// One thing the hostile phone does on the wire; `backup2` carries them out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// A DeviceLink message.
    Send(Vec<Value>),
    /// An UploadFiles batch of whole files (paths as the phone names them).
    Upload(Vec<(String, Vec<u8>)>),
    /// Bytes as they are, frames or not.
    Raw(Vec<u8>),
}

/// The attack, as steps. After them the phone waits briefly for the host's
/// answer (it should hang up); only `CopyOverShared` then goes on, to fail
/// the backup at its end.
pub(crate) fn attack(udid: &str, how: Hostile) -> Vec<Step> {
    let remove = |path: &str| {
        Step::Send(vec![
            "DLMessageRemoveItems".into(),
            Value::Array(vec![path.into()]),
            Value::Dictionary(Dictionary::new()),
            Value::Real(10.0),
        ])
    };
    let escaped = b"escaped by the iPhone".to_vec();
    let upload = |path: String| Step::Upload(vec![(path, escaped.clone())]);
    match how {
        Hostile::ReadOtherPhone => vec![Step::Send(vec![
            "DLMessageDownloadFiles".into(),
            Value::Array(vec![format!("{OTHER_UDID}/Manifest.plist").into()]),
            Value::Dictionary(Dictionary::new()),
            Value::Real(10.0),
        ])],
        Hostile::RemoveOtherPhone => vec![remove(OTHER_UDID)],
        Hostile::RemoveParent => vec![remove("../")],
        Hostile::RemoveOwnFolder => vec![remove(udid)],
        Hostile::WriteOutside => vec![upload(format!("{udid}/../escaped"))],
        Hostile::WriteAbsolute => vec![upload("/tmp/unstuck-escaped".into())],
        Hostile::WriteDrive => vec![upload(format!("{udid}/C:/escaped"))],
        Hostile::WriteThroughLink => vec![upload(format!("{udid}/zz/escaped"))],
        Hostile::MoveOutside => {
            let mut moves = Dictionary::new();
            moves.insert(format!("{udid}/Status.plist"), "../stolen".into());
            vec![Step::Send(vec![
                "DLMessageMoveItems".into(),
                Value::Dictionary(moves),
                Value::Dictionary(Dictionary::new()),
                Value::Real(10.0),
            ])]
        }
        Hostile::CopyOutside | Hostile::CopyOverShared => {
            let to = if how == Hostile::CopyOutside {
                format!("{OTHER_UDID}/Status.plist")
            } else {
                format!("{udid}/Manifest.db")
            };
            vec![Step::Send(vec![
                "DLMessageCopyItem".into(),
                format!("{udid}/Status.plist").into(),
                to.into(),
            ])]
        }
        Hostile::BillionLaughs => vec![Step::Raw(frame(&billion_laughs()))],
        Hostile::DeepNesting => {
            let depth = 200_000;
            let mut xml = String::from("<?xml version=\"1.0\"?><plist version=\"1.0\">");
            xml.push_str(&"<array>".repeat(depth));
            xml.push_str(&"</array>".repeat(depth));
            xml.push_str("</plist>");
            vec![Step::Raw(frame(xml.as_bytes()))]
        }
        Hostile::HugeFrame => {
            let mut bytes = 0xFFFF_FFF0u32.to_be_bytes().to_vec();
            bytes.extend_from_slice(b"not four gigabytes");
            vec![Step::Raw(bytes)]
        }
        Hostile::HugeBlock => {
            let name = format!("{udid}/ab/huge");
            let mut out = Vec::new();
            for n in [&name, &name] {
                out.extend_from_slice(&(n.len() as u32).to_be_bytes());
                out.extend_from_slice(n.as_bytes());
            }
            out.extend_from_slice(&u32::MAX.to_be_bytes());
            out.push(0x0c);
            out.extend_from_slice(&[0u8; 4096]);
            vec![
                Step::Send(vec![
                    "DLMessageUploadFiles".into(),
                    Value::Dictionary(Dictionary::new()),
                    Value::Real(10.0),
                    0u64.into(),
                ]),
                Step::Raw(out),
            ]
        }
    }
}

/// A length-prefixed frame of `body`.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A binary plist `["DLMessageProcessMessage", a30]` where `a0` is a string
/// and each `a(n+1)` is an array of ten references to `a(n)`: 10^30 values
/// once every reference is followed.
pub fn billion_laughs() -> Vec<u8> {
    const LEVELS: usize = 30;
    let mut out = b"bplist00".to_vec();
    let mut offsets = Vec::new();
    // Object 0: the string "lol".
    offsets.push(out.len());
    out.extend_from_slice(&[0x53, b'l', b'o', b'l']);
    // Objects 1..=LEVELS: arrays of ten references to the one before.
    for n in 1..=LEVELS {
        offsets.push(out.len());
        out.push(0xA0 | 10);
        out.extend(std::iter::repeat_n((n - 1) as u8, 10));
    }
    // The message's name, then the top array.
    let name = b"DLMessageProcessMessage";
    offsets.push(out.len());
    out.extend_from_slice(&[0x5F, 0x10, name.len() as u8]);
    out.extend_from_slice(name);
    offsets.push(out.len());
    out.extend_from_slice(&[0xA2, (LEVELS + 1) as u8, LEVELS as u8]);
    let table = out.len();
    for o in &offsets {
        out.extend_from_slice(&(*o as u16).to_be_bytes());
    }
    // Trailer: 6 unused bytes, offset size, reference size, object count,
    // top object, offset table's offset.
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&[2, 1]);
    out.extend_from_slice(&(offsets.len() as u64).to_be_bytes());
    out.extend_from_slice(&((offsets.len() - 1) as u64).to_be_bytes());
    out.extend_from_slice(&(table as u64).to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bomb_is_as_small_as_it_says() {
        assert_eq!(super::billion_laughs().len(), 469);
    }
}
