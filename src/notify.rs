//! Desktop notifications (notify-rust). Every call is bounded by a time-out:
//! a notification server that owns its bus name but never answers would
//! otherwise block forever. No server at all is logged once, and the caller
//! goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thiserror::Error;

/// How long one notification may take to be accepted.
pub const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NotifyError {
    /// No notification server (or no session bus) answered.
    #[error("no desktop notification service is running ({0}); notifications are skipped")]
    Unavailable(String),
    /// The server took longer than the time-out to answer.
    #[error("the desktop notification service did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
}

/// A notification to show: a title, a body and up to three buttons
/// (identifier, label).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub title: String,
    pub body: String,
    pub buttons: Vec<(String, String)>,
}

impl Message {
    /// A message on the desktop: advice written for a terminal (fixes as
    /// `` `unstuck fix …` `` commands) is put in the menu's words.
    pub fn new(title: impl Into<String>, body: impl Into<String>) -> Message {
        Message {
            title: title.into(),
            body: crate::cause::in_menu_words(&body.into()),
            buttons: Vec::new(),
        }
    }

    pub fn button(mut self, id: &str, label: &str) -> Message {
        self.buttons.push((id.to_owned(), label.to_owned()));
        self
    }
}

/// Whether this platform's notifications report which button was clicked
/// (the freedesktop servers do; on macOS and Windows notify-rust does not
/// here).
pub const ANSWERS: bool = cfg!(all(unix, not(target_os = "macos")));

/// A shown notification, whose button the user may click later.
pub struct Shown {
    #[cfg(all(unix, not(target_os = "macos")))]
    handle: notify_rust::NotificationHandle,
}

impl Shown {
    /// The identifier of the button the user clicked, or `None` when the
    /// notification was closed, expired, or `wait` passed first. On
    /// platforms whose notifications report no clicks, `None` at once.
    pub async fn answer(self, wait: Duration) -> Option<String> {
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            let mut clicked = None;
            let listen = self.handle.wait_for_action_async(|response| {
                if let notify_rust::NotificationResponse::Action(id) = response {
                    clicked = Some(id.clone());
                }
            });
            let _ = tokio::time::timeout(wait, listen).await;
            clicked
        }
        #[cfg(not(all(unix, not(target_os = "macos"))))]
        {
            let _ = wait;
            None
        }
    }
}

/// Shows notifications; remembers whether the server was missing so that
/// it is reported once, not per notification.
#[derive(Clone, Default)]
pub struct Notifier {
    reported: Arc<AtomicBool>,
}

impl Notifier {
    pub fn new() -> Notifier {
        Notifier::default()
    }

    /// Shows `message`; returns within the time-out, with a handle to hear
    /// which button is clicked.
    pub async fn post(&self, message: &Message) -> Result<Shown, NotifyError> {
        let mut n = notify_rust::Notification::new();
        n.appname("Unstuck")
            .summary(&message.title)
            .body(&message.body);
        for (id, label) in &message.buttons {
            n.action(id, label);
        }
        let result = match tokio::time::timeout(TIMEOUT, show_async(&n)).await {
            Ok(Ok(shown)) => Ok(shown),
            Ok(Err(e)) => Err(NotifyError::Unavailable(e)),
            Err(_) => Err(NotifyError::Timeout(TIMEOUT)),
        };
        match &result {
            Ok(_) => self.reported.store(false, Ordering::Relaxed),
            Err(e) => {
                if !self.reported.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "notification not shown");
                }
            }
        }
        result
    }

    /// Asks a yes-or-no question as a notification with a button for yes;
    /// anything but a click on it within `wait` (closing it, no server) is
    /// no.
    pub async fn ask(&self, message: &Message, yes: &str, wait: Duration) -> bool {
        match self.post(message).await {
            Ok(shown) => shown.answer(wait).await.as_deref() == Some(yes),
            Err(_) => false,
        }
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
async fn show_async(n: &notify_rust::Notification) -> Result<Shown, String> {
    n.show_async()
        .await
        .map(|handle| Shown { handle })
        .map_err(|e| e.to_string())
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
async fn show_async(n: &notify_rust::Notification) -> Result<Shown, String> {
    let n = n.clone();
    tokio::task::spawn_blocking(move || n.show().map(drop).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())??;
    Ok(Shown {})
}
