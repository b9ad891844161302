//! The monitor's loop: sample, decide, carry out. It sleeps between polls —
//! a few seconds while a backup runs, a minute when idle — and wakes early
//! for file-system events under the backup roots and for phones coming and
//! going. Notifications are sent from their own tasks, so a slow
//! notification server never holds the loop.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use notify::{RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};

use super::observe::{AttachedPhones, Facts, Sampler};
use super::{Effect, Monitor, MonitorConfig, Notice, PhoneSummary};
use crate::device::{self, DeviceEvent, MuxAddress};
use crate::notify::{Message, Notifier};

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct ShellOptions {
    pub roots: Vec<PathBuf>,
    /// usbmuxd, or `None` to watch folders and programs only.
    pub usbmuxd: Option<MuxAddress>,
    pub config: MonitorConfig,
    pub busy_poll: Duration,
    pub idle_poll: Duration,
    /// Show desktop notifications.
    pub notify: bool,
    /// Unstuck's data folder: the run records `unstuck backup` keeps are
    /// read there (`runs/`), and what the monitor saw goes into the
    /// history (`history.db`).
    pub data_dir: Option<PathBuf>,
}

/// Everything the loop tells whoever runs it (the tray, `unstuck watch`),
/// in the order it happened, on one channel.
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorEvent {
    /// What the monitor decided, every effect.
    Effect(Effect),
    /// Every phone's summary, after each poll that changed one.
    Summaries(Vec<PhoneSummary>),
    /// Why phones cannot be seen (usbmuxd unreachable), or `None` once they
    /// can again.
    Devices(Option<String>),
    /// A button clicked on a notice: its identifier (`Action::id`, or
    /// [`DETAILS`]).
    Answer { notice: Notice, button: String },
}

/// The button identifier of "Details" on a monitor notice.
pub const DETAILS: &str = "details";

/// A monitor notice as a notification: its fixes (two at most, as buttons
/// that report the fix's id) and Details.
pub fn notice_message(notice: &Notice) -> Message {
    let mut m = Message::new(&notice.title, &notice.body);
    for action in notice.actions.iter().take(2) {
        m = m.button(action.id(), action.label());
    }
    m.button(DETAILS, "Details")
}

/// How long a notification's buttons are listened to.
const ANSWER_WAIT: Duration = Duration::from_secs(3600);

/// Runs until `events` is closed, sending it everything in
/// [`MonitorEvent`]. `poll_now` makes it look again at once (after a fix,
/// say).
pub async fn run(
    options: ShellOptions,
    events: mpsc::UnboundedSender<MonitorEvent>,
    poll_now: Arc<Notify>,
) {
    let wake = poll_now;
    let (device_tx, mut device_rx) = mpsc::channel(32);
    if let Some(addr) = options.usbmuxd.clone() {
        tokio::spawn(device::watch(addr, device_tx));
    } else {
        drop(device_tx);
    }
    let (facts_tx, mut facts_rx) = mpsc::unbounded_channel();
    let mut watcher = FolderWatcher::new(wake.clone());
    let mut sampler = match &options.data_dir {
        Some(dir) => Sampler::with_data_dir(dir),
        None => Sampler::new(),
    };
    let mut remember = options.data_dir.as_deref().map(Remember::new);
    let mut monitor = Monitor::new(options.config);
    let mut attached = AttachedPhones::new();
    // When each phone was last asked for its facts.
    let mut asked: HashMap<String, Instant> = HashMap::new();
    let notifier = Notifier::new();
    let mut summaries = Vec::new();
    let mut first = true;
    loop {
        watcher.follow(&options.roots);
        // A phone that refused (locked, not trusted) is asked again now and
        // then: it answers once someone unlocks it or taps Trust.
        if let Some(addr) = &options.usbmuxd {
            for (udid, (_, facts)) in attached.iter_mut() {
                if matches!(facts, Facts::Refused(_))
                    && asked.get(udid).is_none_or(|t| t.elapsed() >= ASK_AGAIN)
                {
                    asked.insert(udid.clone(), Instant::now());
                    ask_for_facts(addr.clone(), udid.clone(), facts_tx.clone());
                }
            }
        }
        let observation = {
            let roots = options.roots.clone();
            // Sampling touches the disk: keep it off the async workers.
            let attached_now = attached.clone();
            let mut moved = std::mem::take(&mut sampler);
            let (back, observation) = tokio::task::spawn_blocking(move || {
                let o = moved.sample(&roots, &attached_now);
                (moved, o)
            })
            .await
            .unwrap_or_else(|_| (Sampler::default(), Default::default()));
            sampler = back;
            observation
        };
        let effects = monitor.observe(Timestamp::now(), &observation);
        if let Some(remember) = &mut remember {
            remember.effects(Timestamp::now(), &effects);
        }
        for effect in effects {
            if let (true, Effect::Notify(notice)) = (options.notify, &effect) {
                let notifier = notifier.clone();
                let notice = notice.clone();
                let answers = events.clone();
                tokio::spawn(async move {
                    let shown = notifier.post(&notice_message(&notice)).await;
                    if let Ok(shown) = shown
                        && let Some(button) = shown.answer(ANSWER_WAIT).await
                    {
                        let _ = answers.send(MonitorEvent::Answer { notice, button });
                    }
                });
            }
            if events.send(MonitorEvent::Effect(effect)).is_err() {
                return;
            }
        }
        let now = monitor.summaries(Timestamp::now());
        // After the first poll always (the picture a watch starts with),
        // then on every change.
        if now != summaries || first {
            first = false;
            summaries = now.clone();
            if events.send(MonitorEvent::Summaries(now)).is_err() {
                return;
            }
        }
        let pause = if monitor.busy() {
            options.busy_poll
        } else {
            options.idle_poll
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = wake.notified() => {
                // Let a burst of file events settle into one poll.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Some(event) = device_rx.recv() => match event {
                DeviceEvent::Attached(d) => {
                    let udid = d.udid.clone();
                    attached.insert(d.udid.clone(), (d, Facts::Pending));
                    // Facts are read once per attach, off the loop.
                    if let Some(addr) = options.usbmuxd.clone() {
                        asked.insert(udid.clone(), Instant::now());
                        ask_for_facts(addr, udid, facts_tx.clone());
                    }
                }
                DeviceEvent::Detached(d) => {
                    attached.remove(&d.udid);
                }
                DeviceEvent::MuxUnavailable(e) => {
                    tracing::info!(error = %e, "watching folders and programs only");
                    let _ = events.send(MonitorEvent::Devices(Some(e.to_string())));
                }
                DeviceEvent::MuxAvailable => {
                    let _ = events.send(MonitorEvent::Devices(None));
                }
            },
            Some((udid, facts)) = facts_rx.recv() => {
                if let Some((_, slot)) = attached.get_mut(&udid) {
                    // A passing fault while asking a refusing phone again
                    // says nothing new: it is still to be asked.
                    if !(matches!(slot, Facts::Refused(_)) && matches!(facts, Facts::Pending)) {
                        *slot = facts;
                    }
                }
            }
            _ = events.closed() => return,
        }
    }
}

/// Wakes the loop when anything changes in a backup root or directly in a
/// phone's backup folder (Status.plist, Manifest.db, new hashed folders).
/// A root that does not exist yet (no backup was ever made on this
/// computer) is waited for: its nearest existing parent is watched, and only
/// events on the way to the root wake the loop, so the first backup is seen
/// as it starts.
struct FolderWatcher {
    watcher: Option<notify::RecommendedWatcher>,
    watched: HashSet<PathBuf>,
    /// The roots, for the event filter.
    roots: Arc<std::sync::Mutex<Vec<PathBuf>>>,
}

/// Whether an event on `path` concerns the backups under `roots`: inside
/// one, or on the way to one that does not exist yet.
fn concerns(path: &Path, roots: &[PathBuf]) -> bool {
    roots
        .iter()
        .any(|root| path.starts_with(root) || root.starts_with(path))
}

impl FolderWatcher {
    fn new(wake: Arc<Notify>) -> FolderWatcher {
        let roots: Arc<std::sync::Mutex<Vec<PathBuf>>> = Arc::default();
        let seen_roots = roots.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Reading a folder's files (as sampling does) is an access
            // event: waking on it would make the monitor wake itself.
            let Ok(event) = event else { return };
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            let roots = seen_roots.lock().unwrap_or_else(|e| e.into_inner());
            if event.paths.is_empty() || event.paths.iter().any(|p| concerns(p, &roots)) {
                wake.notify_one();
            }
        })
        .inspect_err(|e| tracing::warn!(error = %e, "file-system events unavailable; polling only"))
        .ok();
        FolderWatcher {
            watcher,
            watched: HashSet::new(),
            roots,
        }
    }

    /// Watches the roots and the phone folders in them, once each; for a
    /// root not there yet, its nearest existing parent.
    fn follow(&mut self, roots: &[PathBuf]) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        *self.roots.lock().unwrap_or_else(|e| e.into_inner()) = roots.to_vec();
        let mut wanted: Vec<PathBuf> = Vec::new();
        for root in roots {
            match std::fs::read_dir(root) {
                Ok(entries) => {
                    wanted.push(root.clone());
                    wanted.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
                }
                Err(_) => {
                    if let Some(parent) = root.ancestors().skip(1).find(|a| a.is_dir()) {
                        wanted.push(parent.to_owned());
                    }
                }
            }
        }
        for path in wanted {
            if !self.watched.contains(&path)
                && watcher.watch(&path, RecursiveMode::NonRecursive).is_ok()
            {
                self.watched.insert(path);
            }
        }
        self.watched.retain(|p| p.exists());
    }
}

/// Adds what the monitor saw to the history: other programs' runs as they
/// end, and every complete backup's date. Writes go out on a blocking
/// task, one at a time, so the loop never waits for the disk; a history
/// that cannot be written is logged once.
struct Remember {
    path: PathBuf,
    tracker: super::runs::MonitorTracker,
    writing: Option<tokio::task::JoinHandle<()>>,
    pending: Vec<crate::history::Run>,
    complete: Vec<(String, Timestamp)>,
}

impl Remember {
    fn new(data_dir: &Path) -> Remember {
        Remember {
            path: crate::history::History::path_in(data_dir),
            tracker: Default::default(),
            writing: None,
            pending: Vec::new(),
            complete: Vec::new(),
        }
    }

    fn effects(&mut self, now: Timestamp, effects: &[Effect]) {
        for effect in effects {
            if let Effect::StateChanged {
                udid,
                state: crate::monitor::PhoneState::Completed { at },
                ..
            } = effect
            {
                self.complete.push((udid.clone(), *at));
            }
            self.pending.extend(self.tracker.effect(now, effect));
        }
        let busy = self.writing.as_ref().is_some_and(|w| !w.is_finished());
        if busy || (self.pending.is_empty() && self.complete.is_empty()) {
            return;
        }
        let (runs, complete) = (
            std::mem::take(&mut self.pending),
            std::mem::take(&mut self.complete),
        );
        let path = self.path.clone();
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let saved = crate::history::History::open(&path).and_then(|mut h| {
                h.save(&runs)?;
                complete
                    .iter()
                    .try_for_each(|(udid, at)| h.complete_seen(udid, *at))
            });
            if let Err(e) = saved {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| tracing::warn!(error = %e, "the history cannot be written"));
            }
        }));
    }
}

/// How often a phone that refused is asked again.
const ASK_AGAIN: Duration = Duration::from_secs(15);

/// Reads a phone's facts off the loop and sends what it answered.
fn ask_for_facts(
    addr: device::MuxAddress,
    udid: String,
    tx: mpsc::UnboundedSender<(String, Facts)>,
) {
    tokio::spawn(async move {
        let facts = match device::facts(&addr, Some(&udid), device::DEADLINE).await {
            Ok(f) => Facts::Known(Box::new(f)),
            Err(e) if e.is_refusal() => Facts::Refused(e),
            // Gone, or a fault of the moment: the next attach asks again.
            Err(_) => Facts::Pending,
        };
        let _ = tx.send((udid, facts));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading a backup's files must not wake the monitor, or sampling wakes
    /// it again, forever (seen as ~50 wake-ups/s of an idle watch). A real
    /// wait: inotify delivers its events on its own thread; 300 ms bounds it.
    #[tokio::test]
    async fn reading_files_does_not_wake_the_monitor_but_writing_does() {
        let root = tempfile::tempdir().unwrap();
        let folder = root.path().join("00008120-001A2B3C4D5E6F70");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("Status.plist"), b"x").unwrap();
        let wake = Arc::new(Notify::new());
        let mut watcher = FolderWatcher::new(wake.clone());
        watcher.follow(&[root.path().to_path_buf()]);
        let quiet = Duration::from_millis(300);

        let _ = std::fs::read(folder.join("Status.plist")).unwrap();
        let woke = tokio::time::timeout(quiet, wake.notified()).await;
        assert!(woke.is_err(), "a read woke the monitor");

        std::fs::write(folder.join("Status.plist"), b"changed").unwrap();
        let woke = tokio::time::timeout(quiet, wake.notified()).await;
        assert!(woke.is_ok(), "a write did not wake the monitor");
    }

    /// Before the first backup the standard folder does not exist: its
    /// making wakes the monitor, and the folder is followed from then on;
    /// other files beside it do not wake it. Real waits, as above.
    #[tokio::test]
    async fn a_root_that_appears_later_is_followed_from_its_first_moment() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("MobileSync/Backup");
        let wake = Arc::new(Notify::new());
        let mut watcher = FolderWatcher::new(wake.clone());
        let roots = [root.clone()];
        watcher.follow(&roots);
        let quiet = Duration::from_millis(300);

        std::fs::write(home.path().join(".bash_history"), b"ls").unwrap();
        let woke = tokio::time::timeout(quiet, wake.notified()).await;
        assert!(woke.is_err(), "an unrelated file woke the monitor");

        std::fs::create_dir(home.path().join("MobileSync")).unwrap();
        let woke = tokio::time::timeout(quiet, wake.notified()).await;
        assert!(woke.is_ok(), "the way to the root did not wake the monitor");
        watcher.follow(&roots);
        std::fs::create_dir(&root).unwrap();
        let woke = tokio::time::timeout(quiet, wake.notified()).await;
        assert!(woke.is_ok(), "the root's making did not wake the monitor");
        watcher.follow(&roots);
        std::fs::create_dir(root.join("00008120-001A2B3C4D5E6F70")).unwrap();
        let woke = tokio::time::timeout(quiet, wake.notified()).await;
        assert!(
            woke.is_ok(),
            "a phone's first folder did not wake the monitor"
        );
    }
}
