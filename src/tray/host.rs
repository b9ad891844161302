//! Whether anything will show the tray icon. On Linux the icon is a
//! StatusNotifierItem: it is seen only when a panel runs a
//! StatusNotifierWatcher with a host registered. Without one, nothing fails —
//! the icon is just never drawn — so the tray asks, and says so.

use std::time::Duration;

/// Why no tray host will show the icon, or `Ok` when one will (always on
/// macOS and Windows, whose menu bar and notification area are the host).
pub async fn check() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        match tokio::time::timeout(Duration::from_secs(3), linux::check()).await {
            Ok(result) => result,
            Err(_) => Err("the session bus did not answer within 3 s".into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = Duration::ZERO;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod linux {
    const WATCHER: &str = "org.kde.StatusNotifierWatcher";

    pub async fn check() -> Result<(), String> {
        let bus = zbus::Connection::session()
            .await
            .map_err(|e| format!("no DBus session bus ({e})"))?;
        let dbus = zbus::fdo::DBusProxy::new(&bus)
            .await
            .map_err(|e| e.to_string())?;
        let name = zbus::names::BusName::try_from(WATCHER).map_err(|e| e.to_string())?;
        if !dbus.name_has_owner(name).await.map_err(|e| e.to_string())? {
            return Err(
                "no panel on this desktop shows tray icons (nothing owns org.kde.StatusNotifierWatcher): add a system-tray or status-notifier area to the panel, or on GNOME install the AppIndicator extension".into(),
            );
        }
        let watcher = zbus::Proxy::new(&bus, WATCHER, "/StatusNotifierWatcher", WATCHER)
            .await
            .map_err(|e| e.to_string())?;
        let registered: bool = watcher
            .get_property("IsStatusNotifierHostRegistered")
            .await
            .map_err(|e| format!("the tray watcher did not answer ({e})"))?;
        if registered {
            Ok(())
        } else {
            Err("a tray watcher runs but no panel has registered to show its icons: add a system-tray area to the panel".into())
        }
    }
}
