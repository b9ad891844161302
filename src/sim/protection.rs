//! Encryption the way an iPhone encrypts a backup when a backup password is
//! set: a backup keybag whose class keys are wrapped with the password
//! (`backup_folder::keybag`), every file under its own random key wrapped
//! with its protection class's key (carried in the file's `MBFile` in
//! Manifest.db as `EncryptionKey`), and Manifest.db itself under a key that
//! Manifest.plist carries as `ManifestKey`. Bodies are AES-256-CBC with a
//! zero IV and PKCS#7 padding. Independent decryptors (iphone-backup-decrypt,
//! iOSbackup, mvt) open what this writes with the password.
//!
//! Keys are derived from the phone's UDID, not drawn at random, so the
//! keybag of a phone stays the same from one backup to the next (as a
//! phone's does) and a password change only re-wraps the class keys.

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

use crate::backup_folder::keybag::{ClassKeys, Keybag};

/// PBKDF2 rounds of the simulated keybag: the keybag carries them, and small
/// counts keep a simulated encrypted backup fast (iOS: 10,000,000 and 10,000).
pub const SIM_DPIC: u32 = 1_000;
pub const SIM_ITER: u32 = 10;
/// The protection class of every file the simulated phone backs up
/// (NSFileProtectionCompleteUntilFirstUserAuthentication) and of Manifest.db.
pub const FILE_CLASS: u32 = 3;
pub const MANIFEST_CLASS: u32 = 4;
/// The classes with an AES class key in a backup keybag (class 2 has a
/// Curve25519 key on a real phone; no simulated file uses it).
const CLASSES: [u32; 10] = [1, 3, 4, 5, 6, 7, 8, 9, 10, 11];

/// The keys of one phone's encrypted backups.
pub(crate) struct Protection {
    udid: String,
    keys: ClassKeys,
    /// The keybag's bytes, for Manifest.plist's `BackupKeyBag`.
    pub keybag: Vec<u8>,
    manifest_key: [u8; 32],
}

impl Protection {
    /// The protection of `udid`'s backups under `password`.
    pub fn new(udid: &str, password: &str) -> Protection {
        let mut keys = ClassKeys::default();
        for class in CLASSES {
            keys.insert(class, derive(udid, &format!("class key {class}")));
        }
        let keybag = Keybag::build(
            password.as_bytes(),
            &keys,
            udid.as_bytes(),
            SIM_DPIC,
            SIM_ITER,
        )
        .to_bytes();
        Protection {
            udid: udid.to_owned(),
            manifest_key: derive(udid, "manifest key"),
            keys,
            keybag,
        }
    }

    /// Manifest.plist's `ManifestKey`: the class, then the wrapped key.
    pub fn manifest_key_blob(&self) -> Vec<u8> {
        self.keys
            .wrap(MANIFEST_CLASS, &self.manifest_key)
            .unwrap_or_default()
    }

    /// The key of a file's body in one version of the file.
    pub fn file_key(&self, file_id: &str, version: u64) -> [u8; 32] {
        derive(&self.udid, &format!("file {file_id} {version}"))
    }

    /// A file key as its `MBFile` carries it (`EncryptionKey`'s data).
    pub fn file_key_blob(&self, key: &[u8; 32]) -> Vec<u8> {
        self.keys.wrap(FILE_CLASS, key).unwrap_or_default()
    }

    pub fn encrypt_manifest(&self, db: &[u8]) -> Vec<u8> {
        encrypt(&self.manifest_key, db)
    }

    /// The plain Manifest.db of an encrypted one this phone wrote; `None`
    /// when it was not (another password's, or plain).
    pub fn decrypt_manifest(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        decrypt(&self.manifest_key, bytes)
    }
}

/// 32 bytes from the phone's UDID and a label (SHA-256).
fn derive(udid: &str, label: &str) -> [u8; 32] {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(udid.as_bytes());
    hash.update(b"\0");
    hash.update(label.as_bytes());
    hash.finalize().into()
}

/// AES-256-CBC, zero IV, fed in pieces: every piece but the last a whole
/// number of 16-byte blocks; [`Cbc::finish`] pads the last (PKCS#7).
pub(crate) struct Cbc {
    cipher: aes::Aes256,
    previous: [u8; 16],
}

impl Cbc {
    pub fn new(key: &[u8; 32]) -> Cbc {
        Cbc {
            cipher: aes::Aes256::new(key.into()),
            previous: [0; 16],
        }
    }

    /// Encrypts `data` in place; its length must be a multiple of 16.
    pub fn update(&mut self, data: &mut [u8]) {
        debug_assert_eq!(data.len() % 16, 0);
        for block in data.chunks_exact_mut(16) {
            for (b, p) in block.iter_mut().zip(self.previous) {
                *b ^= p;
            }
            let mut b = aes::Block::default();
            b.copy_from_slice(block);
            self.cipher.encrypt_block(&mut b);
            block.copy_from_slice(&b);
            self.previous.copy_from_slice(&b);
        }
    }

    /// Encrypts the last piece with its padding (a whole block of padding
    /// when it is already a multiple of 16, as PKCS#7 says).
    pub fn finish(mut self, last: &[u8]) -> Vec<u8> {
        let pad = 16 - last.len() % 16;
        let mut out = Vec::with_capacity(last.len() + pad);
        out.extend_from_slice(last);
        out.resize(last.len() + pad, pad as u8);
        self.update(&mut out);
        out
    }
}

/// The length of a body of `len` bytes once encrypted.
#[cfg(test)]
fn encrypted_len(len: u64) -> u64 {
    len + 16 - len % 16
}

pub(crate) fn encrypt(key: &[u8; 32], data: &[u8]) -> Vec<u8> {
    let whole = data.len() - data.len() % 16;
    let mut head = data[..whole].to_vec();
    let mut cbc = Cbc::new(key);
    cbc.update(&mut head);
    head.extend_from_slice(&cbc.finish(&data[whole..]));
    head
}

/// Decrypts and removes the padding; `None` when the padding is not valid
/// (a wrong key, almost always).
pub(crate) fn decrypt(key: &[u8; 32], data: &[u8]) -> Option<Vec<u8>> {
    if data.is_empty() || !data.len().is_multiple_of(16) {
        return None;
    }
    let cipher = aes::Aes256::new(key.into());
    let mut previous = [0u8; 16];
    let mut out = Vec::with_capacity(data.len());
    for block in data.chunks_exact(16) {
        let mut b = aes::Block::default();
        b.copy_from_slice(block);
        cipher.decrypt_block(&mut b);
        for (x, p) in b.iter_mut().zip(previous) {
            *x ^= p;
        }
        out.extend_from_slice(&b);
        previous.copy_from_slice(block);
    }
    let pad = usize::from(*out.last()?);
    if pad == 0
        || pad > 16
        || out[out.len() - pad..]
            .iter()
            .any(|&b| usize::from(b) != pad)
    {
        return None;
    }
    out.truncate(out.len() - pad);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NIST SP 800-38A F.2.5 (CBC-AES256), with its IV folded into the
    /// first plaintext block, since backups use a zero IV.
    #[test]
    fn cbc_matches_the_nist_vector() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let key: [u8; 32] = hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
            .try_into()
            .unwrap();
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let mut plain = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        for (p, v) in plain.iter_mut().zip(&iv) {
            *p ^= v;
        }
        let mut cbc = Cbc::new(&key);
        cbc.update(&mut plain);
        assert_eq!(
            plain,
            hex("f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d")
        );
    }

    #[test]
    fn bodies_round_trip_in_pieces_or_whole() {
        let key = [7u8; 32];
        for len in [0usize, 1, 15, 16, 17, 65_536, 65_537] {
            let data = crate::synthetic::file_content(1, len as u64, len);
            let whole = encrypt(&key, &data);
            assert_eq!(whole.len() as u64, encrypted_len(len as u64), "{len}");
            assert_eq!(decrypt(&key, &whole).unwrap(), data, "{len}");
            // The same bytes when fed in 16-byte-aligned pieces.
            let mut cbc = Cbc::new(&key);
            let mut out = Vec::new();
            let mut rest = &data[..];
            while rest.len() > 32 {
                let mut piece = rest[..32].to_vec();
                cbc.update(&mut piece);
                out.extend_from_slice(&piece);
                rest = &rest[32..];
            }
            out.extend_from_slice(&cbc.finish(rest));
            assert_eq!(out, whole, "{len}");
        }
        assert!(decrypt(&[8u8; 32], &encrypt(&key, b"Manifest")).is_none());
    }

    #[test]
    fn the_keybag_opens_with_the_password_and_unwraps_the_keys() {
        let p = Protection::new("00008120-001A2B3C4D5E6F70", "correct horse");
        let bag = Keybag::parse(&p.keybag).unwrap();
        let keys = bag.unlock(b"correct horse").unwrap();
        assert_eq!(
            *keys.unwrap(&p.manifest_key_blob()).unwrap(),
            p.manifest_key
        );
        let key = p.file_key("ab12", 1);
        assert_eq!(*keys.unwrap(&p.file_key_blob(&key)).unwrap(), key);
        assert!(bag.unlock(b"horse correct").is_none());
        // A new password re-wraps the same class keys.
        let q = Protection::new("00008120-001A2B3C4D5E6F70", "battery staple");
        assert_eq!(q.manifest_key_blob(), p.manifest_key_blob());
        assert_ne!(q.keybag, p.keybag);
    }
}
