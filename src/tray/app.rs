//! The tray itself: winit's event loop on the main thread, tray-icon's icon
//! and menu (StatusNotifierItem over DBus on Linux, no GTK). It only shows
//! the [`View`]s the controller sends and passes menu clicks back; it
//! decides nothing. With `ControlFlow::Wait` it sleeps until one of those
//! arrives.

use std::borrow::Cow;

use tokio::sync::mpsc;
use tray_icon::menu::{CheckMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tray_icon::{Icon, TrayIcon, TrayIconBuilder};
use winit::application::ApplicationHandler;
use winit::event::{StartCause, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow};
use winit::window::WindowId;

use super::icons;
use super::view::{Entry, Look, View};

/// What the controller sends to the event loop.
#[derive(Debug)]
pub enum UiEvent {
    Show(Box<View>),
    Quit,
}

pub struct App {
    tray: Option<TrayIcon>,
    /// The newest view, kept until the tray exists (updates that arrive
    /// before are not lost) and compared against to skip no-op updates.
    pending: Option<View>,
    shown: Option<View>,
    /// Why the tray could not be made, once it was tried.
    pub failed: Option<String>,
    /// Where the tray says it is ready (the controller checks for a host
    /// then).
    ready: Option<mpsc::UnboundedSender<()>>,
}

impl App {
    pub fn new(ready: mpsc::UnboundedSender<()>) -> App {
        App {
            tray: None,
            pending: None,
            shown: None,
            failed: None,
            ready: Some(ready),
        }
    }

    fn create(&mut self, event_loop: &ActiveEventLoop) {
        let view = self.pending.take().unwrap_or_else(|| View {
            look: Look::NoPhone,
            title: "Unstuck".into(),
            tooltip: "Unstuck: looking for iPhones…".into(),
            entries: Vec::new(),
        });
        let built = icon(view.look).and_then(|icon| {
            let mut builder = with_icon(TrayIconBuilder::new().with_id("unstuck"), icon)
                .with_tooltip(shown_tooltip(&view.tooltip))
                .with_menu(Box::new(menu(&view.entries)));
            if let Some(title) = shown_title(&view.title) {
                builder = builder.with_title(title);
            }
            builder.build().map_err(|e| e.to_string())
        });
        match built {
            Ok(tray) => {
                tracing::info!("tray icon shown");
                self.tray = Some(tray);
                self.shown = Some(view);
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(());
                }
            }
            Err(e) => {
                self.failed = Some(format!("cannot show the tray icon: {e}"));
                event_loop.exit();
            }
        }
    }

    fn apply(&mut self, view: View) {
        let Some(tray) = &mut self.tray else {
            self.pending = Some(view);
            return;
        };
        let old = self.shown.as_ref();
        if old.map(|o| o.look) != Some(view.look) {
            match icon(view.look) {
                Ok(i) => set_icon(tray, i),
                Err(e) => tracing::warn!(error = %e, "icon not changed"),
            }
        }
        if old.map(|o| &o.title) != Some(&view.title) {
            tray.set_title(shown_title(&view.title));
        }
        if old.map(|o| &o.tooltip) != Some(&view.tooltip) {
            let _ = tray.set_tooltip(Some(shown_tooltip(&view.tooltip)));
        }
        if old.map(|o| &o.entries) != Some(&view.entries) {
            tray.set_menu(Some(Box::new(menu(&view.entries))));
        }
        self.shown = Some(view);
    }
}

/// The title as the platform should show it: none on macOS, where
/// tray-icon draws it as text beside the icon in the menu bar (tray-icon
/// 0.26.1 platform_impl/macos/mod.rs:212-221, `button.setTitle`), which
/// is no place for a sentence; the tooltip and the menu say it there.
/// Windows has no title (tray-icon lib.rs:596); Linux shows it only where
/// the panel does.
fn shown_title(title: &str) -> Option<&str> {
    if cfg!(target_os = "macos") {
        None
    } else {
        Some(title)
    }
}

/// The most UTF-16 units of a tooltip Windows shows whole.
///
/// NOTIFYICONDATAW's `szTip` is "a maximum of 128 characters, including the
/// terminating null character"
/// (https://learn.microsoft.com/windows/win32/api/shellapi/ns-shellapi-notifyicondataw),
/// and tray-icon 0.26.1 copies at most 128 units of the text without making
/// room for the null (platform_impl/windows/mod.rs:249,613): a longer
/// tooltip would be left unterminated.
const WINDOWS_TOOLTIP_UNITS: usize = 127;

/// The tooltip as the platform can show it: cut to
/// [`WINDOWS_TOOLTIP_UNITS`] on Windows, whole elsewhere.
fn shown_tooltip(text: &str) -> Cow<'_, str> {
    if cfg!(windows) {
        shorten_utf16(text, WINDOWS_TOOLTIP_UNITS)
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` in at most `max_units` UTF-16 units: whole if it fits, else cut
/// between characters (never inside a surrogate pair) and ended with "…",
/// which the limit counts.
fn shorten_utf16(text: &str, max_units: usize) -> Cow<'_, str> {
    if text.encode_utf16().count() <= max_units {
        return Cow::Borrowed(text);
    }
    let Some(room) = max_units.checked_sub('…'.len_utf16()) else {
        return Cow::Borrowed("");
    };
    let mut units = 0;
    let mut end = 0;
    for (at, c) in text.char_indices() {
        units += c.len_utf16();
        if units > room {
            break;
        }
        end = at + c.len_utf8();
    }
    Cow::Owned(format!("{}…", text[..end].trim_end()))
}

fn icon(look: Look) -> Result<Icon, String> {
    let p = icons::decode(icons::png(look))?;
    Icon::from_rgba(p.rgba, p.width, p.height).map_err(|e| e.to_string())
}

// The macOS menu bar draws template images in its own colour.
#[cfg(target_os = "macos")]
fn with_icon(builder: TrayIconBuilder, icon: Icon) -> TrayIconBuilder {
    builder.with_icon_templated(icon)
}

#[cfg(not(target_os = "macos"))]
fn with_icon(builder: TrayIconBuilder, icon: Icon) -> TrayIconBuilder {
    builder.with_icon(icon)
}

#[cfg(target_os = "macos")]
fn set_icon(tray: &TrayIcon, icon: Icon) {
    let _ = tray.set_icon_templated(Some(icon));
}

#[cfg(not(target_os = "macos"))]
fn set_icon(tray: &TrayIcon, icon: Icon) {
    let _ = tray.set_icon(Some(icon));
}

fn menu(entries: &[Entry]) -> Menu {
    let menu = Menu::new();
    for (n, entry) in entries.iter().enumerate() {
        let appended = match entry {
            Entry::Line(text) => {
                menu.append(&MenuItem::with_id(format!("line-{n}"), text, false, None))
            }
            Entry::Separator => menu.append(&PredefinedMenuItem::separator()),
            Entry::Item {
                command,
                label,
                enabled,
            } => menu.append(&MenuItem::with_id(command.id(), label, *enabled, None)),
            Entry::Check {
                command,
                label,
                checked,
                enabled,
            } => menu.append(&CheckMenuItem::with_id(
                command.id(),
                label,
                *enabled,
                *checked,
                None,
            )),
        };
        if let Err(e) = appended {
            tracing::warn!(error = %e, "menu item left out");
        }
    }
    menu
}

impl ApplicationHandler<UiEvent> for App {
    fn new_events(&mut self, event_loop: &ActiveEventLoop, cause: StartCause) {
        // tray-icon wants the event loop running before the icon is made
        // (on macOS the application must exist).
        if cause == StartCause::Init {
            event_loop.set_control_flow(ControlFlow::Wait);
            self.create(event_loop);
        }
    }

    fn resumed(&mut self, _event_loop: &ActiveEventLoop) {}

    fn user_event(&mut self, event_loop: &ActiveEventLoop, event: UiEvent) {
        match event {
            UiEvent::Show(view) => self.apply(*view),
            UiEvent::Quit => event_loop.exit(),
        }
    }

    fn window_event(&mut self, _: &ActiveEventLoop, _: WindowId, _: WindowEvent) {}
}

/// Sends every menu click's item identifier to `clicks`.
pub fn forward_clicks(clicks: mpsc::UnboundedSender<String>) {
    MenuEvent::set_event_handler(Some(move |event: MenuEvent| {
        let _ = clicks.send(event.id.0);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(title: &str) -> View {
        View {
            look: Look::Stalled,
            title: title.into(),
            tooltip: String::new(),
            entries: Vec::new(),
        }
    }

    #[test]
    fn macos_draws_no_title_beside_its_icon() {
        let title = "Unstuck — Ann's iPhone backed up 2 days ago";
        if cfg!(target_os = "macos") {
            assert_eq!(shown_title(title), None);
        } else {
            assert_eq!(shown_title(title), Some(title));
        }
    }

    #[test]
    fn a_tooltip_is_cut_to_the_units_windows_keeps() {
        fn units(s: &str) -> usize {
            s.encode_utf16().count()
        }
        let fits = "a".repeat(127);
        assert_eq!(shorten_utf16(&fits, 127), fits.as_str());
        let long = "a".repeat(128);
        let cut = shorten_utf16(&long, 127);
        assert_eq!(units(&cut), 127);
        assert!(cut.ends_with('…'), "{cut}");
        // An emoji is two units: it is kept whole or left out, never split.
        let emoji = format!("{}📱📱", "a".repeat(124));
        let cut = shorten_utf16(&emoji, 127);
        assert_eq!(cut, format!("{}📱…", "a".repeat(124)));
        assert_eq!(units(&cut), 127);
        let emoji = format!("{}📱📱", "a".repeat(125));
        let cut = shorten_utf16(&emoji, 127);
        assert_eq!(cut, format!("{}…", "a".repeat(125)));
        // No space left before the "…".
        assert_eq!(shorten_utf16("Ann's iPhone: stalled", 7), "Ann's…");
        assert_eq!(shorten_utf16("abc", 0), "");
        if cfg!(windows) {
            assert!(units(&shown_tooltip(&long)) <= WINDOWS_TOOLTIP_UNITS);
        } else {
            assert_eq!(shown_tooltip(&long), long.as_str());
        }
    }

    /// Views that arrive before the icon exists are not lost: the newest
    /// is kept for when it is made.
    #[test]
    fn a_view_before_the_icon_is_kept_and_the_newest_wins() {
        let (ready, _) = mpsc::unbounded_channel();
        let mut app = App::new(ready);
        app.apply(view("first"));
        app.apply(view("second"));
        assert_eq!(app.pending, Some(view("second")));
        assert_eq!(app.shown, None);
    }
}
