//! The tray app (`unstuck` with no arguments): an icon per state, a tooltip
//! with progress, a menu of one-click fixes built from the diagnosis, and
//! notifications whose buttons run the same fixes.
//!
//! `view` decides what is shown from plain data and `messages` what the
//! fixes say; `app` is the event loop and the icon (it shows, it does not
//! decide); `controller` runs the monitor and the fixes on tokio; `host`
//! checks that a tray host will show the icon; `icons` holds the images.

pub mod app;
pub mod controller;
pub mod host;
pub mod icons;
pub mod messages;
pub mod view;

use tokio::sync::mpsc;

pub use controller::{Demo, Setup};

/// Whether a graphical session is there to show a tray in, from the
/// environment: always on macOS and Windows; on other systems when
/// `DISPLAY` or `WAYLAND_DISPLAY` names a display.
pub fn graphical_session(display: Option<&str>, wayland_display: Option<&str>) -> bool {
    if cfg!(any(target_os = "macos", windows)) {
        return true;
    }
    let set = |v: Option<&str>| v.is_some_and(|v| !v.trim().is_empty());
    set(display) || set(wayland_display)
}

/// [`graphical_session`] for this process's environment.
pub fn graphical_session_here() -> bool {
    let var = |k| std::env::var(k).ok();
    graphical_session(var("DISPLAY").as_deref(), var("WAYLAND_DISPLAY").as_deref())
}

/// Why the tray could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrayError {
    /// No event loop: no display to connect to.
    #[error("cannot open the display ({0})")]
    NoDisplay(String),
    /// The event loop ran but the icon could not be made; the text says
    /// what failed.
    #[error("{0}")]
    Icon(String),
}

/// Runs the tray until Quit. The event loop takes this (the main) thread;
/// the controller runs on `runtime`.
pub fn run(runtime: &tokio::runtime::Runtime, setup: Setup) -> Result<(), TrayError> {
    use winit::event_loop::EventLoop;
    // The tray's DBus connection (made on this thread) then runs on tokio.
    let _runtime = runtime.enter();
    let mut builder = EventLoop::<app::UiEvent>::with_user_event();
    #[cfg(target_os = "macos")]
    {
        use winit::platform::macos::{ActivationPolicy, EventLoopBuilderExtMacOS};
        // A menu-bar app: no Dock icon, and no taking the focus at start.
        // Without a policy winit makes an app run outside a bundle
        // (`cargo install`, `unstuck demo`) a Regular one, with a Dock icon
        // (winit 0.30.13 platform_impl/macos/app_state.rs:118-132,
        // https://github.com/rust-windowing/winit/issues/261); Accessory is
        // what LSUIElement asks for in the bundle.
        builder
            .with_activation_policy(ActivationPolicy::Accessory)
            .with_activate_ignoring_other_apps(false);
    }
    let event_loop = builder
        .build()
        .map_err(|e| TrayError::NoDisplay(plain(&e.to_string())))?;
    let (clicks_tx, clicks) = mpsc::unbounded_channel();
    let (ready_tx, ready) = mpsc::unbounded_channel();
    app::forward_clicks(clicks_tx);
    let proxy = event_loop.create_proxy();
    let controller = runtime.spawn(controller::run(setup, proxy, clicks, ready));
    let mut app = app::App::new(ready_tx);
    let ran = event_loop.run_app(&mut app);
    controller.abort();
    if let Some(why) = app.failed.take() {
        return Err(TrayError::Icon(why));
    }
    ran.map_err(|e| TrayError::Icon(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_display_or_wayland_means_a_graphical_session() {
        if cfg!(any(target_os = "macos", windows)) {
            assert!(graphical_session(None, None));
            return;
        }
        assert!(!graphical_session(None, None));
        assert!(!graphical_session(Some(""), Some("  ")));
        assert!(graphical_session(Some(":0"), None));
        assert!(graphical_session(None, Some("wayland-0")));
    }
}

/// winit's message without the place in winit's source it comes from
/// ("os error at …/linux/mod.rs:765: neither … is set."): a user needs the
/// reason, not the path.
fn plain(message: &str) -> String {
    match message.strip_prefix("os error at ") {
        Some(rest) => rest
            .split_once(": ")
            .map_or(rest, |(_, why)| why)
            .trim_end_matches('.')
            .to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod plain_tests {
    #[test]
    fn the_source_path_is_left_out() {
        assert_eq!(
            super::plain(
                "os error at /x/winit-0.30.13/src/platform_impl/linux/mod.rs:765: neither WAYLAND_DISPLAY nor WAYLAND_SOCKET nor DISPLAY is set."
            ),
            "neither WAYLAND_DISPLAY nor WAYLAND_SOCKET nor DISPLAY is set"
        );
        assert_eq!(super::plain("no display"), "no display");
    }
}
