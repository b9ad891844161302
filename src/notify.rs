//! Desktop notifications (notify-rust). Every call is bounded by a time-out:
//! a notification server that owns its bus name but never answers would
//! otherwise block forever. No server at all is logged once, and the caller
//! goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thiserror::Error;

use crate::monitor::{Action, Notice};

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

/// Shows notices; remembers whether the server was missing so that it is
/// reported once, not per notice.
#[derive(Clone, Default)]
pub struct Notifier {
    reported: Arc<AtomicBool>,
}

impl Notifier {
    pub fn new() -> Notifier {
        Notifier::default()
    }

    /// Shows `notice` with its action buttons; returns within the time-out.
    pub async fn show(&self, notice: &Notice) -> Result<(), NotifyError> {
        let mut n = notify_rust::Notification::new();
        n.appname("Unstuck")
            .summary(&notice.title)
            .body(&notice.body);
        for action in notice.actions.iter().take(2) {
            n.action(action_id(*action), action_label(*action));
        }
        n.action("details", "Details");
        let result = match tokio::time::timeout(TIMEOUT, show_async(&n)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NotifyError::Unavailable(e)),
            Err(_) => Err(NotifyError::Timeout(TIMEOUT)),
        };
        match &result {
            Ok(()) => self.reported.store(false, Ordering::Relaxed),
            Err(e) => {
                if !self.reported.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "notification not shown");
                }
            }
        }
        result
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
async fn show_async(n: &notify_rust::Notification) -> Result<(), String> {
    n.show_async().await.map(drop).map_err(|e| e.to_string())
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
async fn show_async(n: &notify_rust::Notification) -> Result<(), String> {
    let n = n.clone();
    tokio::task::spawn_blocking(move || n.show().map(drop).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())?
}

/// The identifier a notification button reports when clicked.
pub fn action_id(action: Action) -> &'static str {
    match action {
        Action::RestartBackup => "restart-backup",
        Action::NetworkAdvice => "network-advice",
        Action::StorageCleanup => "storage-cleanup",
        Action::EncryptionReset => "encryption-reset",
        Action::RestartPhone => "restart-phone",
    }
}

pub fn action_label(action: Action) -> &'static str {
    match action {
        Action::RestartBackup => "Restart Backup",
        Action::NetworkAdvice => "Network Advice",
        Action::StorageCleanup => "Storage Clean-up",
        Action::EncryptionReset => "Encryption",
        Action::RestartPhone => "Restart iPhone",
    }
}
