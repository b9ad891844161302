//! The facts a diagnosis needs about one phone, parsed from lockdownd's
//! domains. Plain data; a value of the wrong type counts as unknown.

use jiff::Timestamp;
use plist::{Dictionary, Value};
use serde::Serialize;

/// How the phone is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    Usb,
    /// Wi-Fi sync; usbmuxd calls it "Network".
    Wifi,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceFacts {
    pub udid: String,
    pub link: Link,
    pub name: Option<String>,
    pub product_type: Option<String>,
    pub ios_version: Option<String>,
    pub build_version: Option<String>,
    pub serial: Option<String>,
    pub storage: Option<Storage>,
    pub backup: BackupSettings,
    /// The "Sync with this iPhone over Wi-Fi" switch.
    pub wifi_sync: Option<bool>,
    pub battery: Option<Battery>,
    /// The cellular identifiers a backup's Info.plist carries, when the
    /// phone has them: IMEI, MEID, ICCID and its phone number.
    pub cellular: Cellular,
    /// `com.apple.mobile.iTunes`'s MinITunesVersion: the oldest iTunes the
    /// phone works with, which backup tools write as Info.plist's
    /// `iTunes Version`.
    pub min_itunes_version: Option<String>,
    pub read_at: Timestamp,
}

/// Root values of a phone with a cellular modem.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Cellular {
    pub imei: Option<String>,
    pub meid: Option<String>,
    pub iccid: Option<String>,
    pub phone_number: Option<String>,
}

/// `com.apple.disk_usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Storage {
    pub capacity: u64,
    /// The user-data partition, where apps, photos and messages live.
    pub data_capacity: Option<u64>,
    pub free: u64,
}

impl Storage {
    /// Bytes of user data: about what a full backup will hold.
    pub fn used(&self) -> u64 {
        self.data_capacity
            .unwrap_or(self.capacity)
            .saturating_sub(self.free)
    }
}

/// `com.apple.mobile.backup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct BackupSettings {
    /// Backups to a computer are encrypted (a backup password is set).
    pub will_encrypt: Option<bool>,
    pub cloud_backup: Option<bool>,
    pub last_computer_backup: Option<Timestamp>,
    pub last_cloud_backup: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Battery {
    pub percent: u8,
    pub charging: Option<bool>,
}

/// The lockdownd domains that make up [`DeviceFacts`], as read.
#[derive(Debug, Default)]
pub struct Domains {
    pub root: Dictionary,
    pub disk_usage: Option<Dictionary>,
    pub backup: Option<Dictionary>,
    pub wireless: Option<Dictionary>,
    pub battery: Option<Dictionary>,
    pub itunes: Option<Dictionary>,
}

pub fn parse(udid: &str, link: Link, domains: &Domains, read_at: Timestamp) -> DeviceFacts {
    let text = |d: &Dictionary, k: &str| d.get(k).and_then(Value::as_string).map(str::to_owned);
    let number = |d: &Dictionary, k: &str| d.get(k).and_then(Value::as_unsigned_integer);
    let flag = |d: &Dictionary, k: &str| d.get(k).and_then(Value::as_boolean);
    let date = |d: &Dictionary, k: &str| {
        let t: std::time::SystemTime = d.get(k)?.as_date()?.into();
        Timestamp::try_from(t).ok()
    };
    let root = &domains.root;
    let storage = domains.disk_usage.as_ref().and_then(|d| {
        Some(Storage {
            capacity: number(d, "TotalDiskCapacity")?,
            data_capacity: number(d, "TotalDataCapacity"),
            free: number(d, "AmountDataAvailable").or_else(|| number(d, "TotalDataAvailable"))?,
        })
    });
    let backup = domains
        .backup
        .as_ref()
        .map(|d| BackupSettings {
            will_encrypt: flag(d, "WillEncrypt"),
            cloud_backup: flag(d, "CloudBackupEnabled"),
            last_computer_backup: date(d, "LastiTunesBackupDate"),
            last_cloud_backup: date(d, "LastCloudBackupDate"),
        })
        .unwrap_or_default();
    let battery = domains.battery.as_ref().and_then(|d| {
        Some(Battery {
            percent: u8::try_from(number(d, "BatteryCurrentCapacity")?.min(100)).ok()?,
            charging: flag(d, "BatteryIsCharging"),
        })
    });
    DeviceFacts {
        udid: udid.to_owned(),
        link,
        name: text(root, "DeviceName"),
        product_type: text(root, "ProductType"),
        ios_version: text(root, "ProductVersion"),
        build_version: text(root, "BuildVersion"),
        serial: text(root, "SerialNumber"),
        storage,
        backup,
        wifi_sync: domains
            .wireless
            .as_ref()
            .and_then(|d| flag(d, "EnableWifiConnections")),
        battery,
        cellular: Cellular {
            imei: text(root, "InternationalMobileEquipmentIdentity"),
            meid: text(root, "MobileEquipmentIdentifier"),
            iccid: text(root, "IntegratedCircuitCardIdentity"),
            phone_number: text(root, "PhoneNumber"),
        },
        min_itunes_version: domains
            .itunes
            .as_ref()
            .and_then(|d| text(d, "MinITunesVersion")),
        read_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_are_unknown_and_missing_domains_are_none() {
        let mut root = Dictionary::new();
        root.insert("DeviceName".into(), 5u64.into());
        root.insert("ProductVersion".into(), "18.1".into());
        let mut disk = Dictionary::new();
        disk.insert("TotalDiskCapacity".into(), "big".into());
        let domains = Domains {
            root,
            disk_usage: Some(disk),
            ..Domains::default()
        };
        let facts = parse("X", Link::Usb, &domains, Timestamp::UNIX_EPOCH);
        assert_eq!(facts.name, None);
        assert_eq!(facts.ios_version.as_deref(), Some("18.1"));
        assert_eq!(facts.storage, None);
        assert_eq!(facts.backup, BackupSettings::default());
        assert_eq!(facts.battery, None);
    }

    #[test]
    fn used_space() {
        let s = Storage {
            capacity: 128,
            data_capacity: Some(100),
            free: 40,
        };
        assert_eq!(s.used(), 60);
        let full = Storage {
            capacity: 10,
            data_capacity: None,
            free: 20,
        };
        assert_eq!(full.used(), 0);
    }
}
