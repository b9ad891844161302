//! Named scenarios for `unstuck sim --scenario NAME` and `unstuck demo`.

use std::time::Duration;

use super::{Content, Pairing, SimConfig, Stall};

/// Every scenario name with what it shows.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("healthy", "a paired iPhone whose backups finish"),
    ("slow", "a backup throttled to 0.5 MB/s over Wi-Fi"),
    (
        "stall-at-40",
        "a backup that stops moving at 40 % for 10 minutes, then goes on",
    ),
    ("unplug-at-70", "the cable comes out at 70 % of the backup"),
    (
        "host-disk-full",
        "the computer has too little free space (error 105)",
    ),
    (
        "wrong-password",
        "an encrypted backup whose password is not the one given (error 207)",
    ),
    (
        "passcode-wait",
        "iOS asks for the passcode and gives up after 3 minutes (error 208)",
    ),
    (
        "locked",
        "a phone locked since it restarted: no session until it is unlocked",
    ),
    (
        "untrusted",
        "the phone no longer trusts this computer (pairing revoked)",
    ),
    (
        "unpaired",
        "a phone that never trusted this computer: usbmuxd has no pair record",
    ),
    (
        "hostile-read-other-phone",
        "a hostile phone asks for another phone's Manifest.plist",
    ),
    (
        "hostile-remove-other-phone",
        "a hostile phone asks to remove another phone's backup",
    ),
    (
        "hostile-remove-parent",
        "a hostile phone asks to remove ../ (the whole backup folder)",
    ),
    (
        "hostile-remove-own-folder",
        "a hostile phone asks to remove its own whole backup",
    ),
    (
        "hostile-write-outside",
        "a hostile phone writes to <UDID>/../escaped",
    ),
    (
        "hostile-write-absolute",
        "a hostile phone writes to an absolute path",
    ),
    (
        "hostile-write-drive",
        "a hostile phone writes to <UDID>/C:/escaped",
    ),
    (
        "hostile-write-through-link",
        "a hostile phone writes through <UDID>/zz (a link on the host)",
    ),
    (
        "hostile-move-outside",
        "a hostile phone moves its Status.plist to ../stolen",
    ),
    (
        "hostile-copy-outside",
        "a hostile phone copies onto another phone's Status.plist",
    ),
    (
        "hostile-copy-over-shared",
        "a phone copies over Manifest.db, then fails the backup",
    ),
    (
        "hostile-billion-laughs",
        "a hostile phone sends a 469-byte plist that expands to 10^30 values",
    ),
    (
        "hostile-deep-nesting",
        "a hostile phone sends 200,000 nested arrays",
    ),
    (
        "hostile-huge-frame",
        "a hostile phone sends a frame that claims 4 GiB",
    ),
    (
        "hostile-huge-block",
        "a hostile phone sends a file block that claims 4 GiB",
    ),
];

/// The configuration of scenario `name`, `None` when there is no such one.
pub fn scenario(name: &str) -> Option<SimConfig> {
    let mut c = SimConfig::new("00008120-001A2B3C4D5E6F70");
    c.device_name = "Demo iPhone".into();
    c.content = Content {
        files: 400,
        file_size: 64 * 1024,
        seed: 42,
        changed_files: 20,
    };
    // Slow enough that a person can watch the progress (about 13 s).
    c.throughput = Some(2_000_000);
    match name {
        "healthy" => {}
        "slow" => {
            // Reached over Wi-Fi, so its Wi-Fi sync switch is on.
            c.link = super::Link::Wifi;
            c.wifi_sync = true;
            c.throughput = Some(500_000);
        }
        "stall-at-40" => {
            c.stall = Some(Stall {
                at_percent: 40.0,
                duration: Duration::from_secs(600),
            })
        }
        "unplug-at-70" => c.unplug_at_percent = Some(70.0),
        "host-disk-full" => c.claimed_backup_bytes = Some(1 << 50),
        "wrong-password" => {
            c.will_encrypt = true;
            c.password = Some("correct horse".into());
        }
        "passcode-wait" => {
            c.ios_version = "18.1".into();
            c.passcode_wait = Some(Duration::from_secs(180));
        }
        "locked" => c.pairing = Pairing::Locked,
        "untrusted" => c.pairing = Pairing::Revoked,
        "unpaired" => c.pairing = Pairing::Unpaired,
        other => {
            let how = other.strip_prefix("hostile-")?;
            c.hostile = Some(super::Hostile::ALL.iter().find(|(_, name)| *name == how)?.0);
        }
    }
    c.fit_storage_to_content();
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_scenario_exists_and_differs_from_healthy() {
        let healthy = scenario("healthy").unwrap();
        for (name, _) in SCENARIOS.iter().skip(1) {
            let c = scenario(name).unwrap_or_else(|| panic!("{name}"));
            assert_ne!(c, healthy, "{name}");
        }
        assert!(scenario("nope").is_none());
    }
}
