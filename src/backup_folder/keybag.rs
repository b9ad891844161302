//! The keybag of an encrypted backup (Manifest.plist's `BackupKeyBag`): the
//! class keys, each wrapped with a key derived from the backup password.
//! Reading it checks a password with no phone attached; writing it is how the
//! simulated iPhone makes backups that real decryptors open.
//!
//! The layout is a run of tag–length–value records: a 4-byte ASCII tag, a
//! 4-byte big-endian length, the value; a 4-byte value is a big-endian
//! number. The bag's own records (VERS, TYPE, UUID, HMCK, WRAP, SALT, ITER,
//! and since iOS 10.2 DPWT, DPIC, DPSL) come first; then each class key
//! begins with another UUID and has CLAS, WRAP, KTYP and WPKY. Sources: the
//! iphone-dataprotection keybag parser (Bédrune and Sigwald, "iPhone data
//! protection in depth", 2011) and Apple Platform Security, "Keybags for
//! Data Protection" (backup keybag, PBKDF2 with 10,000,000 iterations of
//! SHA-256 since iOS 10.2).
//!
//! Unlocking: PBKDF2-HMAC-SHA256(password, DPSL, DPIC) then
//! PBKDF2-HMAC-SHA1(that, SALT, ITER), 32 bytes each; each class key wrapped
//! with the passcode (WRAP & 2) is unwrapped with RFC 3394 AES key wrap,
//! whose integrity check fails for a wrong password. The 10,000,000 rounds
//! of SHA-256 are the cost of a check; they run through the `pbkdf2` crate
//! over `sha2`, whose compression uses the CPU's SHA extensions (x86 SHA-NI,
//! ARMv8 SHA2): 1.5 times as fast as `ring` here (`cargo bench --bench
//! password` prints both).

use std::collections::BTreeMap;
use std::fmt;

use aes_kw::KeyInit;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A keybag larger than this is refused (a real one is about 1.5 KB).
pub const MAX_BYTES: usize = 64 * 1024;
/// At most this many class keys (iOS has 11 classes).
const MAX_CLASS_KEYS: usize = 64;
/// Refused above these: a keybag that claims more rounds would keep a check
/// busy for hours. iOS uses 10,000,000 and 10,000.
pub const MAX_DPIC: u32 = 100_000_000;
pub const MAX_ITER: u32 = 10_000_000;
/// The class key is wrapped with the key derived from the password.
pub const WRAP_PASSCODE: u32 = 2;
/// A wrapped class or file key: 32 bytes and the 8-byte integrity block.
const WRAPPED_LEN: usize = 40;

/// How the slow, first derivation is done (iOS 10.2 and later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleProtection {
    pub salt: Vec<u8>,
    pub iterations: u32,
}

/// One class key, still wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassKey {
    pub uuid: Vec<u8>,
    pub class: u32,
    pub wrap: u32,
    /// 0: an AES key; 1: a Curve25519 private key (class 2).
    pub key_type: u32,
    pub wrapped: Vec<u8>,
}

/// A parsed keybag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keybag {
    pub version: u32,
    /// 1 for a backup keybag.
    pub kind: u32,
    pub uuid: Vec<u8>,
    pub hmac_key: Vec<u8>,
    pub wrap: u32,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub double_protection: Option<DoubleProtection>,
    pub class_keys: Vec<ClassKey>,
}

/// Why a keybag cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeybagError {
    TooLarge(usize),
    /// A record runs past the end.
    Truncated,
    Missing(&'static str),
    /// A value out of range, named.
    Bad(String),
}

impl fmt::Display for KeybagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeybagError::TooLarge(n) => write!(
                f,
                "the keybag is {n} bytes, more than the {MAX_BYTES} a backup keybag can be"
            ),
            KeybagError::Truncated => f.write_str("the keybag is cut short"),
            KeybagError::Missing(tag) => write!(f, "the keybag has no {tag} record"),
            KeybagError::Bad(why) => write!(f, "the keybag {why}"),
        }
    }
}

impl std::error::Error for KeybagError {}

/// The unwrapped class keys, by class: what opens the backup's files.
#[derive(Clone, Default)]
pub struct ClassKeys(BTreeMap<u32, Zeroizing<[u8; 32]>>);

impl fmt::Debug for ClassKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are never printed.
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl ClassKeys {
    pub fn insert(&mut self, class: u32, key: [u8; 32]) {
        self.0.insert(class, Zeroizing::new(key));
    }

    /// [`ClassKeys::insert`] of a key that is wiped wherever it goes.
    pub fn keep(&mut self, class: u32, key: Zeroizing<[u8; 32]>) {
        self.0.insert(class, key);
    }

    pub fn get(&self, class: u32) -> Option<&[u8; 32]> {
        self.0.get(&class).map(|k| &**k)
    }

    pub fn classes(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.keys().copied()
    }

    /// A file or manifest key as Manifest.db and Manifest.plist carry it:
    /// the class as 4 little-endian bytes, then `key` wrapped with that
    /// class's key. `None` when the class has no key.
    pub fn wrap(&self, class: u32, key: &[u8; 32]) -> Option<Vec<u8>> {
        let wrapped = wrap_key(self.get(class)?, key);
        let mut out = class.to_le_bytes().to_vec();
        out.extend_from_slice(&wrapped);
        Some(out)
    }

    /// The key inside a blob made by [`ClassKeys::wrap`]; `None` when the
    /// class is unknown or the key does not unwrap.
    pub fn unwrap(&self, blob: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        if blob.len() != 4 + WRAPPED_LEN {
            return None;
        }
        let class = u32::from_le_bytes(blob[..4].try_into().ok()?);
        unwrap_key(self.get(class)?, &blob[4..])
    }
}

/// RFC 3394 AES-256 key wrap of a 32-byte key.
pub fn wrap_key(kek: &[u8; 32], key: &[u8; 32]) -> [u8; WRAPPED_LEN] {
    let kw = aes_kw::KwAes256::new(kek.into());
    let mut out = [0u8; WRAPPED_LEN];
    // 32 bytes is a whole number of 8-byte blocks and the buffer fits it.
    let _ = kw.wrap_key(key, &mut out);
    out
}

/// RFC 3394 unwrap; `None` when the integrity check fails (a wrong key).
pub fn unwrap_key(kek: &[u8; 32], wrapped: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    if wrapped.len() != WRAPPED_LEN {
        return None;
    }
    let kw = aes_kw::KwAes256::new(kek.into());
    let mut out = Zeroizing::new([0u8; 32]);
    kw.unwrap_key(wrapped, &mut out[..]).ok()?;
    Some(out)
}

impl Keybag {
    /// Parses a keybag, every length checked against what is left.
    pub fn parse(bytes: &[u8]) -> Result<Keybag, KeybagError> {
        if bytes.len() > MAX_BYTES {
            return Err(KeybagError::TooLarge(bytes.len()));
        }
        let mut top: BTreeMap<[u8; 4], &[u8]> = BTreeMap::new();
        let mut class_keys: Vec<BTreeMap<[u8; 4], &[u8]>> = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            if rest.len() < 8 {
                return Err(KeybagError::Truncated);
            }
            let tag: [u8; 4] = rest[..4].try_into().map_err(|_| KeybagError::Truncated)?;
            let len = u32::from_be_bytes(rest[4..8].try_into().map_err(|_| KeybagError::Truncated)?)
                as usize;
            if len > rest.len() - 8 {
                return Err(KeybagError::Truncated);
            }
            let value = &rest[8..8 + len];
            rest = &rest[8 + len..];
            // The bag's own UUID comes first; every later UUID opens a class key.
            if &tag == b"UUID" && top.contains_key(b"UUID") {
                if class_keys.len() == MAX_CLASS_KEYS {
                    return Err(KeybagError::Bad(format!(
                        "has more than {MAX_CLASS_KEYS} class keys"
                    )));
                }
                class_keys.push(BTreeMap::new());
            }
            match class_keys.last_mut() {
                Some(key) => key.insert(tag, value),
                None => top.insert(tag, value),
            };
        }
        let number = |map: &BTreeMap<[u8; 4], &[u8]>, tag: &'static str| {
            let value = map.get(tag.as_bytes()).ok_or(KeybagError::Missing(tag))?;
            let four: [u8; 4] = (*value)
                .try_into()
                .map_err(|_| KeybagError::Bad(format!("has a {tag} of {} bytes", value.len())))?;
            Ok::<u32, KeybagError>(u32::from_be_bytes(four))
        };
        let data = |map: &BTreeMap<[u8; 4], &[u8]>, tag: &'static str| {
            map.get(tag.as_bytes())
                .map(|v| v.to_vec())
                .ok_or(KeybagError::Missing(tag))
        };
        let iterations = number(&top, "ITER")?;
        if iterations == 0 || iterations > MAX_ITER {
            return Err(KeybagError::Bad(format!(
                "asks for {iterations} PBKDF2-SHA1 rounds (ITER); 1 to {MAX_ITER} are accepted"
            )));
        }
        let double_protection = match top.get(b"DPIC") {
            None => None,
            Some(_) => {
                let iterations = number(&top, "DPIC")?;
                if iterations == 0 || iterations > MAX_DPIC {
                    return Err(KeybagError::Bad(format!(
                        "asks for {iterations} PBKDF2-SHA256 rounds (DPIC); 1 to {MAX_DPIC} are accepted"
                    )));
                }
                Some(DoubleProtection {
                    salt: data(&top, "DPSL")?,
                    iterations,
                })
            }
        };
        let class_keys = class_keys
            .iter()
            .map(|key| {
                Ok(ClassKey {
                    uuid: data(key, "UUID")?,
                    class: number(key, "CLAS")?,
                    wrap: number(key, "WRAP")?,
                    key_type: number(key, "KTYP").unwrap_or(0),
                    wrapped: data(key, "WPKY")?,
                })
            })
            .collect::<Result<Vec<_>, KeybagError>>()?;
        // A keybag no password can open is not a backup's: saying so beats
        // calling every candidate wrong.
        if !class_keys
            .iter()
            .any(|k| k.wrap & WRAP_PASSCODE != 0 && k.wrapped.len() == WRAPPED_LEN)
        {
            return Err(KeybagError::Bad(
                "has no class key wrapped with the password: it is not an encrypted backup's keybag"
                    .into(),
            ));
        }
        Ok(Keybag {
            version: number(&top, "VERS")?,
            kind: number(&top, "TYPE")?,
            uuid: data(&top, "UUID")?,
            hmac_key: data(&top, "HMCK").unwrap_or_default(),
            wrap: number(&top, "WRAP")?,
            salt: data(&top, "SALT")?,
            iterations,
            double_protection,
            class_keys,
        })
    }

    /// The keybag's bytes, records in the order iOS writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |tag: &[u8; 4], value: &[u8]| {
            out.extend_from_slice(tag);
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        };
        put(b"VERS", &self.version.to_be_bytes());
        put(b"TYPE", &self.kind.to_be_bytes());
        put(b"UUID", &self.uuid);
        put(b"HMCK", &self.hmac_key);
        put(b"WRAP", &self.wrap.to_be_bytes());
        put(b"SALT", &self.salt);
        put(b"ITER", &self.iterations.to_be_bytes());
        if let Some(dp) = &self.double_protection {
            put(b"DPWT", &1u32.to_be_bytes());
            put(b"DPIC", &dp.iterations.to_be_bytes());
            put(b"DPSL", &dp.salt);
        }
        for key in &self.class_keys {
            put(b"UUID", &key.uuid);
            put(b"CLAS", &key.class.to_be_bytes());
            put(b"WRAP", &key.wrap.to_be_bytes());
            put(b"KTYP", &key.key_type.to_be_bytes());
            put(b"WPKY", &key.wrapped);
        }
        out
    }

    /// The key the class keys are wrapped with, derived from `password`:
    /// the slow part, about a second at iOS's iteration counts.
    pub fn passcode_key(&self, password: &[u8]) -> Zeroizing<[u8; 32]> {
        let first;
        let secret: &[u8] = match &self.double_protection {
            Some(dp) => {
                first = pbkdf2_sha256(password, &dp.salt, dp.iterations);
                &first[..]
            }
            None => password,
        };
        let mut key = Zeroizing::new([0u8; 32]);
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(secret, &self.salt, self.iterations.max(1), &mut key[..]);
        key
    }

    /// The class keys, when `password` is the backup's password; `None`
    /// when it is not (a passcode-wrapped key fails its integrity check).
    pub fn unlock(&self, password: &[u8]) -> Option<ClassKeys> {
        self.unlock_with(&self.passcode_key(password))
    }

    /// [`Keybag::unlock`] with the derived key already at hand.
    pub fn unlock_with(&self, passcode_key: &[u8; 32]) -> Option<ClassKeys> {
        let mut keys = ClassKeys::default();
        let mut any = false;
        for class_key in &self.class_keys {
            if class_key.wrap & WRAP_PASSCODE == 0 {
                continue;
            }
            let key = unwrap_key(passcode_key, &class_key.wrapped)?;
            keys.keep(class_key.class, key);
            any = true;
        }
        any.then_some(keys)
    }

    /// A backup keybag protecting `keys` with `password`, as iOS 10.2 and
    /// later write one; `seed` makes the salts and UUIDs (the simulated
    /// iPhone passes one per phone, so its keybag is stable). Real phones
    /// use `dpic` 10,000,000 and `iter` 10,000; small counts keep tests fast.
    pub fn build(password: &[u8], keys: &ClassKeys, seed: &[u8], dpic: u32, iter: u32) -> Keybag {
        let bytes = |label: &str, n: usize| {
            let mut out = Vec::with_capacity(n);
            let mut counter = 0u32;
            while out.len() < n {
                let mut hash = Sha256::new();
                hash.update(seed);
                hash.update(label.as_bytes());
                hash.update(counter.to_be_bytes());
                out.extend_from_slice(&hash.finalize());
                counter += 1;
            }
            out.truncate(n);
            out
        };
        let mut bag = Keybag {
            version: 4,
            kind: 1,
            uuid: bytes("uuid", 16),
            hmac_key: bytes("hmck", 40),
            wrap: WRAP_PASSCODE,
            salt: bytes("salt", 20),
            iterations: iter.max(1),
            double_protection: Some(DoubleProtection {
                salt: bytes("dpsl", 20),
                iterations: dpic.max(1),
            }),
            class_keys: Vec::new(),
        };
        let kek = bag.passcode_key(password);
        bag.class_keys = keys
            .0
            .iter()
            .map(|(class, key)| ClassKey {
                uuid: bytes(&format!("class {class}"), 16),
                class: *class,
                wrap: WRAP_PASSCODE,
                key_type: 0,
                wrapped: wrap_key(&kek, key).to_vec(),
            })
            .collect();
        bag
    }
}

/// PBKDF2-HMAC-SHA256 with a 32-byte result: the keybag's slow step.
pub fn pbkdf2_sha256(password: &[u8], salt: &[u8], rounds: u32) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, rounds.max(1), &mut out[..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ClassKeys {
        let mut keys = ClassKeys::default();
        for class in [1u32, 3, 4, 5, 6, 7, 8, 9, 10, 11] {
            keys.insert(class, [class as u8; 32]);
        }
        keys
    }

    #[test]
    fn a_built_keybag_parses_back_and_opens_with_its_password_only() {
        let bag = Keybag::build(b"correct horse", &keys(), b"phone", 10, 5);
        let bytes = bag.to_bytes();
        let parsed = Keybag::parse(&bytes).unwrap();
        assert_eq!(parsed, bag);
        assert_eq!(parsed.class_keys.len(), 10);
        let unlocked = parsed.unlock(b"correct horse").unwrap();
        assert_eq!(unlocked.get(3), Some(&[3u8; 32]));
        assert!(parsed.unlock(b"wrong").is_none());
        assert!(parsed.unlock(b"").is_none());
    }

    /// RFC 3394 section 4.6: 256-bit key data with a 256-bit KEK.
    #[test]
    fn key_wrap_matches_the_rfc_vector() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let kek: [u8; 32] = hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
            .try_into()
            .unwrap();
        let key: [u8; 32] = hex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
            .try_into()
            .unwrap();
        let wrapped = wrap_key(&kek, &key);
        assert_eq!(
            wrapped.to_vec(),
            hex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
        );
        assert_eq!(*unwrap_key(&kek, &wrapped).unwrap(), key);
    }

    /// The widely published PBKDF2-HMAC-SHA256 vector ("password", "salt",
    /// 4096 rounds), so
    /// the derivation is the standard one, not merely self-consistent.
    #[test]
    fn pbkdf2_matches_published_vectors() {
        let out = pbkdf2_sha256(b"password", b"salt", 4096);
        assert_eq!(
            out.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"
        );
    }

    #[test]
    fn class_key_blobs_wrap_and_unwrap() {
        let keys = keys();
        let blob = keys.wrap(4, &[9u8; 32]).unwrap();
        assert_eq!(&blob[..4], &4u32.to_le_bytes());
        assert_eq!(blob.len(), 44);
        assert_eq!(*keys.unwrap(&blob).unwrap(), [9u8; 32]);
        assert!(keys.wrap(2, &[9u8; 32]).is_none());
        let mut other = blob.clone();
        other[..4].copy_from_slice(&3u32.to_le_bytes());
        assert!(keys.unwrap(&other).is_none());
        assert!(keys.unwrap(&blob[..40]).is_none());
    }

    #[test]
    fn malformed_keybags_are_refused_with_words() {
        let good = Keybag::build(b"pw", &keys(), b"p", 1, 1).to_bytes();
        for cut in [3, 8, 20, good.len() - 1] {
            assert!(Keybag::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        // A record that claims 4 GiB.
        let mut huge = b"VERS".to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Keybag::parse(&huge), Err(KeybagError::Truncated));
        assert!(matches!(
            Keybag::parse(&vec![0u8; MAX_BYTES + 1]),
            Err(KeybagError::TooLarge(_))
        ));
        // Rounds that would keep a check busy for days.
        let mut bag = Keybag::build(b"pw", &keys(), b"p", 1, 1);
        bag.double_protection.as_mut().unwrap().iterations = u32::MAX;
        let err = Keybag::parse(&bag.to_bytes()).unwrap_err().to_string();
        assert!(err.contains("DPIC"), "{err}");
        // No class key a password opens: not a backup's keybag.
        let mut bag = Keybag::build(b"pw", &keys(), b"p", 1, 1);
        for key in &mut bag.class_keys {
            key.wrap = 1;
        }
        let err = Keybag::parse(&bag.to_bytes()).unwrap_err().to_string();
        assert!(
            err.contains("no class key wrapped with the password"),
            "{err}"
        );
        // Unencrypted backups carry random bytes as their keybag.
        let random = crate::synthetic::file_content(0xBA6, 0, 64);
        assert!(Keybag::parse(&random).is_err());
        assert_eq!(
            Keybag::parse(b"").unwrap_err(),
            KeybagError::Missing("ITER")
        );
    }
}
