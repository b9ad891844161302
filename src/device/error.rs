//! The failures a user meets when talking to a phone, each with what to do.
//! `idevice`'s errors are translated here and nowhere else.

use std::time::Duration;

use idevice::IdeviceError;
use thiserror::Error;

/// Why a request to a phone failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceError {
    /// Nothing listens at the usbmuxd address.
    #[error("usbmuxd is not running at {address}. {hint}")]
    UsbmuxdNotRunning { address: String, hint: &'static str },
    /// `USBMUXD_SOCKET_ADDRESS` or `usbmuxd_address` cannot be parsed.
    #[error(
        "the usbmuxd address {value:?} is not valid: {why}. Use HOST:PORT (127.0.0.1:27015) or the path of a socket"
    )]
    BadAddress { value: String, why: String },
    /// No phone (or not the one asked for) is attached.
    #[error("{}", match udid { Some(u) => format!("the iPhone {u} is not attached: plug it in (or join the same Wi-Fi with Wi-Fi sync on) and unlock it"), None => "no iPhone is attached: plug one in with a cable and unlock it".to_owned() })]
    NoDevice { udid: Option<String> },
    /// usbmuxd holds no pair record: the phone never trusted this computer.
    #[error(
        "the iPhone has not trusted this computer yet: unlock it and tap Trust This Computer, then try again"
    )]
    NotPaired,
    /// The phone rejected the pair record (trust reset, record expired).
    #[error(
        "the iPhone no longer trusts this computer: unplug it, plug it back in, unlock it and tap Trust This Computer"
    )]
    PairingRevoked,
    /// The phone is locked (since it restarted, or a passcode is needed).
    #[error("the iPhone is locked: unlock it with its passcode and keep it unlocked")]
    Locked,
    /// The TLS session with the phone failed.
    #[error(
        "the secure connection to the iPhone failed ({detail}): unplug it, plug it back in and tap Trust This Computer if asked"
    )]
    Tls { detail: String },
    /// Something listens at the usbmuxd address but never answers.
    #[error(
        "usbmuxd at {address} did not answer within {} s: it may be hung; restart it (or the computer) and try again", after.as_secs()
    )]
    UsbmuxdTimeout { address: String, after: Duration },
    /// What listens at the usbmuxd address answers, but not as usbmuxd.
    #[error(
        "the program at {address} does not speak usbmuxd's protocol ({detail}): check USBMUXD_SOCKET_ADDRESS, or usbmuxd_address in the config file"
    )]
    NotUsbmuxd { address: String, detail: String },
    /// The phone went away in the middle of a request.
    #[error(
        "the iPhone was disconnected during the request: check the cable (or the Wi-Fi) and try again"
    )]
    Detached,
    /// A request got no answer in time.
    #[error("the iPhone did not answer {what} within {} s: unlock it, or unplug it and plug it back in", after.as_secs())]
    Timeout { what: &'static str, after: Duration },
    /// The phone refused a service (for example one it does not have).
    #[error("the iPhone refused {service}: {reason}")]
    ServiceRefused { service: String, reason: String },
    /// Anything else the protocol said: a developer's message.
    #[error("unexpected answer from the iPhone or usbmuxd: {0}")]
    Protocol(String),
}

impl DeviceError {
    /// The phone refuses this computer — locked, or it does not trust it —
    /// which a person fixes on the phone; not a fault of the connection.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            DeviceError::Locked | DeviceError::NotPaired | DeviceError::PairingRevoked
        )
    }

    /// The usbmuxd address refused the connection or does not exist.
    pub fn not_running(address: impl Into<String>) -> DeviceError {
        DeviceError::UsbmuxdNotRunning {
            address: address.into(),
            hint: usbmuxd_hint(),
        }
    }
}

/// What to install or start so that usbmuxd runs.
///
/// # Platform specific behavior
/// usbmuxd is a package on Linux, part of macOS, and the Apple Mobile Device
/// Service that Apple Devices or iTunes installs on Windows.
pub fn usbmuxd_hint() -> &'static str {
    #[cfg(target_os = "macos")]
    {
        "It is part of macOS: restart the Mac if it stays missing."
    }
    #[cfg(windows)]
    {
        "Install Apple Devices (Microsoft Store) or iTunes, which bring the Apple Mobile Device Service, and make sure that service is running."
    }
    #[cfg(not(any(target_os = "macos", windows)))]
    {
        "Install the usbmuxd package (sudo apt install usbmuxd) and plug the iPhone in; it starts when a phone is attached."
    }
}

/// Translates an `idevice` error. A socket that drops mid-request means the
/// phone went away.
pub fn translate(err: IdeviceError) -> DeviceError {
    use std::io::ErrorKind;
    match err {
        // tokio-rustls reports TLS failures (alerts, bad certificates) as
        // I/O errors wrapping the rustls error.
        IdeviceError::Socket(e)
            if e.get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
        {
            DeviceError::Tls {
                detail: e.to_string(),
            }
        }
        IdeviceError::Socket(e) => match e.kind() {
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe => DeviceError::Detached,
            ErrorKind::InvalidData => DeviceError::Protocol(e.to_string()),
            _ => DeviceError::Protocol(e.to_string()),
        },
        IdeviceError::InvalidHostID => DeviceError::PairingRevoked,
        IdeviceError::Rustls(e) => DeviceError::Tls {
            detail: e.to_string(),
        },
        IdeviceError::PemParseFailed(e) => DeviceError::Tls {
            detail: format!("the pair record's keys cannot be read: {e}"),
        },
        IdeviceError::Usbmuxd(idevice::usbmuxd::errors::UsbmuxdError::BadDevice) => {
            DeviceError::NoDevice { udid: None }
        }
        IdeviceError::DeviceNotFound => DeviceError::NoDevice { udid: None },
        IdeviceError::DeviceLocked => DeviceError::Locked,
        other => {
            let text = format!("{other:?}");
            // Without idevice's "pair" feature these device errors arrive
            // as strings (UnknownErrorType).
            if text.contains("PairingDialogResponsePending") || text.contains("UserDeniedPairing") {
                DeviceError::NotPaired
            } else if text.contains("EscrowLocked") || text.contains("PasswordProtected") {
                DeviceError::Locked
            } else if text.contains("InvalidHostID") {
                DeviceError::PairingRevoked
            } else {
                DeviceError::Protocol(other.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let cases = [
            (
                DeviceError::not_running("/var/run/usbmuxd"),
                "/var/run/usbmuxd",
            ),
            (DeviceError::NotPaired, "Trust This Computer"),
            (DeviceError::PairingRevoked, "no longer trusts"),
            (DeviceError::Locked, "unlock it"),
            (DeviceError::NoDevice { udid: None }, "plug one in"),
            (
                DeviceError::NoDevice {
                    udid: Some("X".into()),
                },
                "the iPhone X is not attached",
            ),
            (
                DeviceError::Timeout {
                    what: "GetValue",
                    after: Duration::from_secs(10),
                },
                "within 10 s",
            ),
        ];
        for (err, expected) in cases {
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn translation() {
        use std::io;
        let eof = IdeviceError::Socket(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert_eq!(translate(eof), DeviceError::Detached);
        assert_eq!(
            translate(IdeviceError::InvalidHostID),
            DeviceError::PairingRevoked
        );
        assert_eq!(
            translate(IdeviceError::UnknownErrorType("PasswordProtected".into())),
            DeviceError::Locked
        );
        assert_eq!(translate(IdeviceError::DeviceLocked), DeviceError::Locked);
    }
}
