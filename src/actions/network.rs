//! Network advice built from facts: how the phone is attached, its Wi-Fi
//! sync switch, how often it dropped lately, and whether this computer is
//! online. The first item is the most likely fix. [`gather`] reads the
//! phone once for the menu and `unstuck fix network`; [`advise`] is pure.

use serde::Serialize;

use crate::device::{self, DeviceError, Link, MuxAddress};
use crate::humanize;

/// What the advice is built from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// How the phone is attached now; `None` when it is not.
    pub link: Option<Link>,
    /// The phone's "Sync with this iPhone over Wi-Fi" switch.
    pub wifi_sync: Option<bool>,
    /// Detaches seen in the last minutes (a loose cable or a hub).
    pub recent_detaches: u32,
    pub network_up: Option<bool>,
    /// What keeps Unstuck from talking to the phone, when something does.
    pub blocker: Option<Blocker>,
}

/// Why the phone could not be asked, in words that say what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// usbmuxd cannot be reached: how the phone is attached is unknown.
    Usbmuxd(String),
    /// usbmuxd lists the phone, but it refused (locked, not trusted …).
    Phone(String),
}

/// One piece of advice; `toggle` offers the Wi-Fi sync switch in one click.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Advice {
    pub text: String,
    pub toggle_wifi_sync: Option<bool>,
}

fn say(text: impl Into<String>) -> Advice {
    Advice {
        text: text.into(),
        toggle_wifi_sync: None,
    }
}

/// What the network fix found: the phone (when one answered) and the advice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAdvice {
    /// The phone that answered, to turn its Wi-Fi sync switch.
    pub udid: Option<String>,
    pub link: Option<Link>,
    pub advice: Vec<Advice>,
    /// What kept Unstuck from asking the phone, if anything did.
    pub blocker: Option<Blocker>,
}

/// Reads the phone's facts (when `addr` is given) and advises; a phone that
/// does not answer counts as not attached.
pub async fn gather(
    addr: Option<&MuxAddress>,
    udid: Option<&str>,
    recent_detaches: u32,
) -> NetworkAdvice {
    let Some(addr) = addr else {
        return NetworkAdvice {
            udid: None,
            link: None,
            advice: advise(&Inputs {
                recent_detaches,
                ..Inputs::default()
            }),
            blocker: None,
        };
    };
    let (facts, link, blocker) = match device::facts(addr, udid, device::DEADLINE).await {
        Ok(f) => {
            let link = Some(f.link);
            (Some(f), link, None)
        }
        Err(DeviceError::NoDevice { .. }) => (None, None, None),
        Err(
            e @ (DeviceError::UsbmuxdNotRunning { .. }
            | DeviceError::UsbmuxdTimeout { .. }
            | DeviceError::NotUsbmuxd { .. }
            | DeviceError::BadAddress { .. }),
        ) => (None, None, Some(Blocker::Usbmuxd(e.to_string()))),
        Err(e) => {
            // The phone refused, but usbmuxd still says how it is attached.
            let link = device::list(addr, device::DEADLINE)
                .await
                .ok()
                .and_then(|l| l.into_iter().find(|d| udid.is_none_or(|u| d.udid == u)))
                .map(|d| d.link);
            (None, link, Some(Blocker::Phone(e.to_string())))
        }
    };
    let advice = advise(&Inputs {
        link,
        wifi_sync: facts.as_ref().and_then(|f| f.wifi_sync),
        recent_detaches,
        network_up: None,
        blocker: blocker.clone(),
    });
    NetworkAdvice {
        udid: facts.map(|f| f.udid),
        link,
        advice,
        blocker,
    }
}

/// The advice, most likely fix first.
pub fn advise(i: &Inputs) -> Vec<Advice> {
    let mut out = Vec::new();
    match &i.blocker {
        // Without usbmuxd nothing about the phone is known: that is the fix.
        // (Its name is written in lower case, even first in a sentence.)
        Some(Blocker::Usbmuxd(why)) => return vec![say(why.clone())],
        Some(Blocker::Phone(why)) => out.push(say(humanize::upper_first(why))),
        None => {}
    }
    if i.recent_detaches >= 2 {
        out.push(say(format!(
            "The connection dropped {} times in the last minutes: use another cable and another USB port, plugged straight into the computer (no hub).",
            i.recent_detaches
        )));
    }
    match i.link {
        None => {
            out.push(say("Plug the iPhone in with a cable and unlock it: USB is the steadiest way to back up."));
            if i.wifi_sync == Some(true) {
                out.push(say("Or keep it unlocked, charging and on the same Wi-Fi network as this computer (Wi-Fi sync is on)."));
            }
        }
        Some(Link::Wifi) => {
            if i.network_up == Some(false) {
                out.push(say("This computer has no network connection: connect it to the Wi-Fi network the iPhone uses."));
            }
            out.push(say(
                "Plug the iPhone in with a cable for a faster, steadier backup.",
            ));
            out.push(say(
                "Check that the iPhone and this computer are on the same Wi-Fi network.",
            ));
            out.push(say(
                "On the iPhone, turn Wi-Fi (or Airplane Mode) off and on again.",
            ));
            out.push(say(
                "Move the iPhone closer to the Wi-Fi router, and keep it charging.",
            ));
        }
        Some(Link::Usb) => {
            if i.recent_detaches < 2 && i.blocker.is_none() {
                out.push(say("The USB connection looks steady; if backups still stop, try another cable or port."));
            }
            if i.wifi_sync == Some(false) {
                out.push(Advice {
                    text: "Turn on Wi-Fi sync so the iPhone can also back up without a cable."
                        .into(),
                    toggle_wifi_sync: Some(true),
                });
            }
        }
    }
    if i.wifi_sync == Some(true) && i.link != Some(Link::Wifi) {
        out.push(Advice {
            text: "Wi-Fi sync is on; turn it off if the iPhone keeps switching between cable and Wi-Fi.".into(),
            toggle_wifi_sync: Some(false),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(inputs: Inputs, first: &str, len: usize) -> Vec<Advice> {
        let advice = advise(&inputs);
        assert!(advice[0].text.contains(first), "{advice:#?}");
        assert_eq!(advice.len(), len, "{advice:#?}");
        advice
    }

    #[test]
    fn what_blocks_the_phone_comes_first_and_no_cable_is_asked_for_on_usb() {
        let locked = check(
            Inputs {
                link: Some(Link::Usb),
                wifi_sync: Some(true),
                blocker: Some(Blocker::Phone("the iPhone is locked: unlock it".into())),
                ..Inputs::default()
            },
            "The iPhone is locked",
            2,
        );
        assert!(
            locked
                .iter()
                .all(|a| !a.text.contains("Plug the iPhone in"))
        );
        check(
            Inputs {
                blocker: Some(Blocker::Usbmuxd("usbmuxd is not running at /x".into())),
                wifi_sync: Some(true),
                ..Inputs::default()
            },
            "usbmuxd is not running",
            1,
        );
    }

    #[test]
    fn flapping_comes_first() {
        check(
            Inputs {
                link: Some(Link::Usb),
                recent_detaches: 3,
                ..Inputs::default()
            },
            "dropped 3 times",
            1,
        );
    }

    #[test]
    fn wifi_advice_and_an_offline_computer() {
        check(
            Inputs {
                link: Some(Link::Wifi),
                wifi_sync: Some(true),
                network_up: Some(false),
                ..Inputs::default()
            },
            "no network connection",
            5,
        );
        check(
            Inputs {
                link: Some(Link::Wifi),
                network_up: Some(true),
                ..Inputs::default()
            },
            "cable",
            4,
        );
    }

    #[test]
    fn the_wifi_sync_switch_is_offered_both_ways() {
        let on = check(
            Inputs {
                link: Some(Link::Usb),
                wifi_sync: Some(false),
                ..Inputs::default()
            },
            "steady",
            2,
        );
        assert_eq!(on[1].toggle_wifi_sync, Some(true));
        let off = check(
            Inputs {
                link: None,
                wifi_sync: Some(true),
                ..Inputs::default()
            },
            "Plug the iPhone in",
            3,
        );
        assert_eq!(off[2].toggle_wifi_sync, Some(false));
    }
}
