//! The tray's controller, on the tokio runtime beside the event loop: runs
//! the monitor, turns its summaries into [`View`]s for the event loop, and
//! carries out menu clicks and notification buttons with the `actions`
//! module. Questions (stop a stuck program? restart the phone?) are asked
//! as notifications with a Yes button; no answer is no.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Notify, mpsc, oneshot};
use winit::event_loop::EventLoopProxy;

use super::app::UiEvent;
use super::messages;
use super::view::{self, Command, Situation, View};
use crate::actions::restart::{RestartError, Restarted};
use crate::actions::{Action, Confirm, network, restart, storage};
use crate::device::{self, MuxAddress};
use crate::engine::record::Failure;
use crate::engine::{self, BackupEvent, BackupOptions};
use crate::monitor::shell::{self, MonitorEvent, ShellOptions};
use crate::monitor::{Notice, PhoneSummary};
use crate::notify::{self, Message, Notifier};

/// How long a question waits for its answer before it counts as no.
const ASK_WAIT: Duration = Duration::from_secs(300);
/// How long after the icon appears a missing tray host is looked for (a
/// panel starting at login with Unstuck may take a moment).
const HOST_GRACE: Duration = Duration::from_secs(2);

/// Everything the tray works with.
pub struct Setup {
    pub shell: ShellOptions,
    /// Where and how the tray's own backups go.
    pub backup: BackupOptions,
    pub platform_command: Option<Vec<String>>,
    /// Unstuck's data folder: run records (the monitor reads them for
    /// exact progress) and the history.
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    pub config_file: PathBuf,
    pub exe: PathBuf,
    pub demo: Option<Demo>,
}

/// `unstuck demo`: a first backup whose own watchdog never fires (so the
/// monitor notices the stall and the menu offers Restart Backup), and what
/// to do when the user restarts it (let the simulated phone go on).
pub struct Demo {
    pub first_backup: BackupOptions,
    pub on_restart: Box<dyn Fn() + Send + Sync>,
}

/// A backup the tray runs itself, on its own thread.
struct Job {
    udid: Option<String>,
    what: String,
    cancel: Option<oneshot::Sender<()>>,
    thread: std::thread::JoinHandle<()>,
}

enum Done {
    Backup { what: String, outcome: Outcome },
    Cancelled,
}

/// How a backup the tray ran ended.
enum Outcome {
    /// In words: files, size, folder.
    Complete(String),
    /// The user said no to a question.
    Declined,
    /// The monitor reports it, from the run record.
    Reported,
    /// Why, the cause, and the phone's ErrorCode when it gave one.
    Failed(Failure),
}

pub async fn run(
    setup: Setup,
    ui: EventLoopProxy<UiEvent>,
    mut clicks: mpsc::UnboundedReceiver<String>,
    mut ready: mpsc::UnboundedReceiver<()>,
) {
    let (monitor_tx, mut monitor) = mpsc::unbounded_channel();
    let poll_now = Arc::new(Notify::new());
    tokio::spawn(shell::run(
        setup.shell.clone(),
        monitor_tx,
        poll_now.clone(),
    ));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let setup_usbmuxd = setup.shell.usbmuxd.clone();
    let mut c = Controller {
        notifier: Notifier::new(),
        start_at_login: read_start_at_login(&setup.exe),
        setup,
        job: None,
        done: done_tx,
        shown: None,
        phones: Vec::new(),
        no_devices: match &setup_usbmuxd {
            Some(_) => None,
            None => Some(
                "no usbmuxd address could be worked out (see usbmuxd_address in Settings)".into(),
            ),
        },
    };
    // A backup killed mid-run (a crash, a power cut) left the last complete
    // one beside its folder: put back before anything else.
    let roots = c.setup.shell.roots.clone();
    let notifier = c.notifier.clone();
    tokio::spawn(async move {
        let Ok(recovered) = tokio::task::spawn_blocking(move || {
            roots
                .iter()
                .flat_map(|r| engine::recover_stopped_runs(r))
                .collect::<Vec<_>>()
        })
        .await
        else {
            return;
        };
        for (folder, result) in recovered {
            let message = match result {
                Ok(()) => Message::new(
                    "Last complete backup put back",
                    format!(
                        "A backup that was stopped before it could finish had kept the last complete backup aside; it is back in {}.",
                        folder.display()
                    ),
                ),
                Err(why) => Message::new(
                    "The last complete backup is kept aside",
                    format!(
                        "It could not be put back in {} ({why}); `unstuck backup` tries again before it starts.",
                        folder.display()
                    ),
                ),
            };
            let _ = notifier.post(&message).await;
        }
    });
    if let Some(demo) = &c.setup.demo {
        let options = demo.first_backup.clone();
        c.start_backup(options, "backing up the demo iPhone".into());
    }
    let end = crate::signals::stopped();
    tokio::pin!(end);
    let mut minute = tokio::time::interval(Duration::from_secs(60));
    minute.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        c.show(&ui);
        tokio::select! {
            Some(event) = monitor.recv() => match event {
                MonitorEvent::Summaries(phones) => c.phones = phones,
                MonitorEvent::Devices(why) => c.no_devices = why,
                MonitorEvent::Effect(effect) => {
                    if let crate::monitor::Effect::StateChanged { .. } = effect {
                        tracing::debug!(?effect, "state changed");
                    }
                }
                MonitorEvent::Answer { notice, button } => {
                    tracing::info!(button, udid = notice.udid, "notification button");
                    c.answer(&notice, &button).await;
                    poll_now.notify_one();
                }
            },
            Some(id) = clicks.recv() => {
                let Some(command) = Command::from_id(&id) else { continue };
                tracing::info!(command = id, "menu");
                if command == Command::Quit {
                    break;
                }
                let udid = view::focus(&c.phones).map(|p| p.udid.clone());
                c.run(command, udid).await;
                poll_now.notify_one();
            }
            Some(()) = ready.recv() => {
                let notifier = c.notifier.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(HOST_GRACE).await;
                    if let Err(why) = super::host::check().await {
                        tracing::warn!(%why, "the tray icon will not be seen");
                        let _ = notifier
                            .post(&Message::new("Unstuck is running, but its icon cannot be shown", why))
                            .await;
                    }
                });
            }
            Some(done) = done_rx.recv() => {
                c.finished(done).await;
                poll_now.notify_one();
            }
            _ = minute.tick() => {}
            _ = &mut end => break,
        }
    }
    if let Some(job) = c.job.take() {
        // Quit waits for a clean stop only briefly: a thread waiting for an
        // answer is left to end with the process.
        stop(job, Duration::from_secs(2)).await;
    }
    let _ = ui.send_event(UiEvent::Quit);
}

struct Controller {
    setup: Setup,
    notifier: Notifier,
    start_at_login: Option<bool>,
    job: Option<Job>,
    done: mpsc::UnboundedSender<Done>,
    shown: Option<View>,
    phones: Vec<PhoneSummary>,
    no_devices: Option<String>,
}

impl Controller {
    fn situation(&self) -> Situation {
        Situation {
            phones: self.phones.clone(),
            now: Timestamp::now(),
            start_at_login: self.start_at_login,
            busy: self.job.as_ref().map(|j| j.what.clone()),
            no_devices: self.no_devices.clone(),
        }
    }

    /// Sends the view to the event loop when it changed.
    fn show(&mut self, ui: &EventLoopProxy<UiEvent>) {
        let view = view::view(&self.situation());
        if self.shown.as_ref() != Some(&view) {
            self.shown = Some(view.clone());
            let _ = ui.send_event(UiEvent::Show(Box::new(view)));
        }
    }

    fn phone(&self, udid: Option<&str>) -> Option<&PhoneSummary> {
        udid.and_then(|u| self.phones.iter().find(|p| p.udid == u))
    }

    fn name(&self, udid: Option<&str>) -> String {
        self.phone(udid)
            .and_then(|p| p.name.clone())
            .unwrap_or_else(|| "the iPhone".into())
    }

    async fn post(&self, message: Message) {
        let _ = self.notifier.post(&message).await;
    }

    async fn answer(&mut self, notice: &Notice, button: &str) {
        if button == shell::DETAILS {
            if let Some(p) = self.phone(Some(&notice.udid)) {
                self.post(messages::details(p)).await;
            }
            return;
        }
        let Some(action) = Action::from_id(button) else {
            return;
        };
        self.run(Command::Fix(action), Some(notice.udid.clone()))
            .await;
    }

    async fn run(&mut self, command: Command, udid: Option<String>) {
        let addr = self.setup.shell.usbmuxd.clone();
        match command {
            Command::Fix(Action::RestartBackup) => self.back_up(udid).await,
            Command::Fix(Action::NetworkAdvice) => {
                let detaches = self.phone(udid.as_deref()).map_or(0, |p| p.recent_detaches);
                let name = self.name(udid.as_deref());
                let (notifier, addr) = (self.notifier.clone(), addr);
                tokio::spawn(async move {
                    network_advice(&notifier, addr, udid, name, detaches).await;
                });
            }
            Command::Fix(Action::StorageCleanup) => {
                let (notifier, roots, addr) =
                    (self.notifier.clone(), self.setup.shell.roots.clone(), addr);
                tokio::spawn(async move { storage_cleanup(&notifier, roots, addr, udid).await });
            }
            Command::Fix(Action::EncryptionReset) => {
                let Some(addr) = addr else { return };
                let notifier = self.notifier.clone();
                tokio::spawn(async move {
                    let message =
                        match device::facts(&addr, udid.as_deref(), device::DEADLINE).await {
                            Ok(facts) => messages::encryption(&facts),
                            Err(e) => Message::new("Encryption", e.to_string()),
                        };
                    let _ = notifier.post(&message).await;
                });
            }
            Command::Fix(Action::RestartPhone) => {
                let Some(addr) = addr else { return };
                let notifier = self.notifier.clone();
                tokio::spawn(async move {
                    let failed = |e: restart::RestartError| {
                        Message::new("The iPhone did not restart", e.to_string())
                    };
                    let message = match restart::plan_phone_restart(&addr, udid.as_deref()).await {
                        Err(e) => failed(e),
                        Ok(plan) => {
                            if !ask(&notifier, &plan.question).await {
                                return;
                            }
                            match restart::carry_out(&addr, &plan).await {
                                Ok(()) => Message::new(
                                    "The iPhone is restarting",
                                    "It will be back in a minute; Unstuck will see it return.",
                                ),
                                Err(e) => failed(e),
                            }
                        }
                    };
                    let _ = notifier.post(&message).await;
                });
            }
            Command::OpenBackupFolder => {
                let focus = self.phone(udid.as_deref()).and_then(|p| p.folder.clone());
                if let Some(folder) = focus {
                    self.open(&folder).await;
                }
            }
            Command::OpenLog => {
                let log = self.setup.log_file.clone();
                self.open(&log).await;
            }
            Command::Report => {
                // Written off the runtime's workers: it reads the history.
                let data_dir = self.setup.data_dir.clone();
                let overdue_days = self.setup.shell.config.overdue.as_hours() / 24;
                let out = crate::history::report_path(&data_dir);
                let written = tokio::task::spawn_blocking(move || {
                    crate::history::write_report(&data_dir, &out, Timestamp::now(), overdue_days)
                        .map(|_| out)
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
                match written {
                    Ok(report) => self.open(&report).await,
                    Err(e) => {
                        self.post(Message::new("The report was not written", e))
                            .await
                    }
                }
            }
            Command::Settings => {
                let config = self.setup.config_file.clone();
                self.open(&config).await;
            }
            Command::StartAtLogin => {
                let exe = &self.setup.exe;
                let result = if self.start_at_login == Some(true) {
                    crate::autostart::disable(exe)
                } else {
                    crate::autostart::enable(exe)
                };
                if let Err(e) = result {
                    self.post(Message::new(
                        "Start at Login was not changed",
                        e.to_string(),
                    ))
                    .await;
                }
                self.start_at_login = read_start_at_login(exe);
            }
            Command::Quit => {}
        }
    }

    /// Back Up Now / Restart Backup: stops the tray's own backup of the
    /// phone first, then restarts with `actions::restart` (which asks before
    /// stopping another program).
    async fn back_up(&mut self, udid: Option<String>) {
        if let Some(job) = self.job.take() {
            if job.udid.is_some() && job.udid != udid {
                self.post(Message::new(
                    "One backup at a time",
                    format!("Unstuck is {}; try again when it is done.", job.what),
                ))
                .await;
                self.job = Some(job);
                return;
            }
            stop(job, Duration::from_secs(10)).await;
        }
        if let Some(demo) = &self.setup.demo {
            (demo.on_restart)();
        }
        let mut options = self.setup.backup.clone();
        options.udid = udid.clone();
        let what = format!("backing up {}", self.name(udid.as_deref()));
        self.start_backup(options, what);
    }

    fn start_backup(&mut self, options: BackupOptions, what: String) {
        let Some(addr) = self.setup.shell.usbmuxd.clone() else {
            return;
        };
        let (cancel_tx, cancel_rx) = oneshot::channel();
        let done = self.done.clone();
        let asker = Asker::new(self.notifier.clone());
        let data_dir = self.setup.data_dir.clone();
        let command = self.setup.platform_command.clone();
        let stuck_after = restart::stuck_after(&self.setup.shell.config);
        let udid = options.udid.clone();
        let label = what.clone();
        let thread = std::thread::Builder::new()
            .name("unstuck-backup".into())
            .spawn(move || {
                let outcome = backup_thread(
                    addr,
                    options,
                    stuck_after,
                    command,
                    asker,
                    data_dir,
                    cancel_rx,
                );
                let _ = done.send(match outcome {
                    Some(outcome) => Done::Backup {
                        what: label,
                        outcome,
                    },
                    None => Done::Cancelled,
                });
            });
        match thread {
            Ok(thread) => {
                self.job = Some(Job {
                    udid,
                    what,
                    cancel: Some(cancel_tx),
                    thread,
                })
            }
            Err(e) => tracing::error!(error = %e, "cannot start the backup thread"),
        }
    }

    async fn finished(&mut self, done: Done) {
        let Done::Backup { what, outcome } = done else {
            return;
        };
        self.job = None;
        let message = match outcome {
            Outcome::Complete(text) => Message::new("Backup complete", text),
            Outcome::Declined | Outcome::Reported => return,
            Outcome::Failed(Failure { words: e, .. }) => Message::new(
                format!("Stopped {what}"),
                format!("{e}. The last complete backup, if there was one, is unchanged."),
            ),
        };
        self.post(message).await;
    }

    async fn open(&self, path: &Path) {
        if let Err(e) = open(path).await {
            self.post(Message::new(format!("Cannot open {}", path.display()), e))
                .await;
        }
    }
}

fn read_start_at_login(exe: &Path) -> Option<bool> {
    crate::autostart::status(exe)
        .ok()
        .map(|s| s == crate::autostart::Status::On)
}

/// Cancels a backup job and waits for its thread to end, `wait` at most: a
/// thread waiting for the answer to a question sees the cancel only after
/// it.
async fn stop(mut job: Job, wait: Duration) {
    if let Some(cancel) = job.cancel.take() {
        let _ = cancel.send(());
    }
    let joined = tokio::task::spawn_blocking(move || job.thread.join());
    tokio::pin!(joined);
    if tokio::time::timeout(wait, &mut joined).await.is_ok() {
        return;
    }
    // A backup that holds the last complete one aside is putting it back
    // (a large folder takes a while): that is waited for, a minute at most.
    // A thread waiting for an answer holds none.
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while crate::engine::snapshot::held() > 0 && tokio::time::Instant::now() < until {
        tokio::select! {
            _ = &mut joined => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    tracing::warn!(?wait, "the backup thread did not end in time; left behind");
}

/// One backup, start to end, on its own thread and runtime (its questions
/// block this thread while the main runtime asks them). `None` when it was
/// cancelled.
fn backup_thread(
    addr: MuxAddress,
    options: BackupOptions,
    stuck_after: jiff::SignedDuration,
    command: Option<Vec<String>>,
    mut asker: Asker,
    data_dir: PathBuf,
    cancel: oneshot::Receiver<()>,
) -> Option<Outcome> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Some(Outcome::Failed(Failure::unknown(format!(
                "cannot start the backup ({e})"
            ))));
        }
    };
    // Kept apart from the asker, which the backup borrows while it runs.
    let (notifier, main) = (asker.notifier.clone(), asker.runtime.clone());
    rt.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut recorder = engine::record::Recorder::new(&data_dir);
        let work = async {
            let result = restart::restart(
                &addr,
                &options,
                stuck_after,
                command.as_deref(),
                &mut asker,
                &tx,
            )
            .await;
            match result {
                Ok(Restarted::Backup(report)) => Outcome::Complete(format!(
                    "{} files, {} — {}",
                    report.files,
                    crate::humanize::bytes(report.bytes),
                    report.folder.display()
                )),
                Ok(Restarted::Command { program, status }) if status.success() => {
                    Outcome::Complete(format!("{program} finished."))
                }
                Ok(Restarted::Command { program, status }) => {
                    Outcome::Failed(Failure::unknown(format!("{program} ended with {status}")))
                }
                Err(RestartError::Declined) => Outcome::Declined,
                Err(RestartError::Command { program, source }) => {
                    Outcome::Failed(Failure::unknown(format!("cannot run {program} ({source})")))
                }
                Err(RestartError::Engine(e)) => Outcome::Failed(Failure::of(&e)),
                Err(e) => Outcome::Failed(Failure::unknown(e.to_string())),
            }
        };
        tokio::pin!(work);
        tokio::pin!(cancel);
        loop {
            tokio::select! {
                outcome = &mut work => {
                    while let Ok(event) = rx.try_recv() {
                        recorder.event(&event);
                    }
                    // A run that started is the monitor's to report (it
                    // reads the record); one that never started is ours.
                    let outcome = match outcome {
                        Outcome::Complete(_) if recorder.started() => {
                            recorder.finish(None);
                            Outcome::Reported
                        }
                        Outcome::Failed(failure) if recorder.started() => {
                            recorder.finish(Some(failure));
                            Outcome::Reported
                        }
                        other => other,
                    };
                    return Some(outcome);
                }
                Some(event) = rx.recv() => {
                    if let BackupEvent::Started { asks_for_passcode: true, device_name, .. } = &event {
                        let message = messages::passcode(device_name.as_deref());
                        let notifier = notifier.clone();
                        main.spawn(async move {
                            let _ = notifier.post(&message).await;
                        });
                    }
                    recorder.event(&event)
                }
                _ = &mut cancel => {
                    // Quit, or a new Restart Backup: the run was stopped.
                    if recorder.started() {
                        recorder.finish(Some(Failure {
                            stopped: true,
                            ..Failure::unknown("stopped from the tray".into())
                        }));
                    }
                    return None;
                }
            }
        }
    })
}

/// Asks questions as notifications from any thread: the main runtime shows
/// them and waits for the click; this side blocks until then.
struct Asker {
    notifier: Notifier,
    runtime: tokio::runtime::Handle,
}

impl Asker {
    fn new(notifier: Notifier) -> Asker {
        Asker {
            notifier,
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl Confirm for Asker {
    fn confirm(&mut self, question: &str) -> bool {
        let notifier = self.notifier.clone();
        let asked = question.to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(ask(&notifier, &asked).await);
        });
        rx.recv().unwrap_or(false)
    }

    /// The newest complete backup is never moved from the tray: that takes
    /// `unstuck fix storage` and a typed yes.
    fn confirm_again(&mut self, _question: &str) -> bool {
        false
    }
}

/// Asks `question` as a notification with a Yes button; no click within
/// [`ASK_WAIT`] is no. Where no button can answer, it says what was asked
/// and where to say yes, and the answer is no.
async fn ask(notifier: &Notifier, question: &str) -> bool {
    if !notify::ANSWERS {
        let message = Message::new(
            "Unstuck needs a yes",
            format!(
                "{question}\nAnswer it in a terminal: unstuck fix restart (or fix restart-iphone)."
            ),
        );
        let _ = notifier.post(&message).await;
        return false;
    }
    let yes = notifier
        .ask(&messages::question(question), messages::YES, ASK_WAIT)
        .await;
    tracing::info!(question, yes, "asked");
    yes
}

async fn network_advice(
    notifier: &Notifier,
    addr: Option<MuxAddress>,
    udid: Option<String>,
    name: String,
    recent_detaches: u32,
) {
    let found = network::gather(addr.as_ref(), udid.as_deref(), recent_detaches).await;
    let Ok(shown) = notifier
        .post(&messages::network(&name, &found.advice))
        .await
    else {
        return;
    };
    if shown.answer(ASK_WAIT).await.as_deref() == Some(messages::WIFI_SYNC_ON)
        && let (Some(addr), Some(udid)) = (addr, found.udid)
    {
        let message = match device::set_wifi_sync(&addr, Some(&udid), true, device::DEADLINE).await
        {
            Ok(()) => Message::new(
                "Wi-Fi sync is on",
                format!("{name} can now back up over Wi-Fi while it charges."),
            ),
            Err(e) => Message::new("Wi-Fi sync was not changed", e.to_string()),
        };
        let _ = notifier.post(&message).await;
    }
}

async fn storage_cleanup(
    notifier: &Notifier,
    roots: Vec<PathBuf>,
    addr: Option<MuxAddress>,
    udid: Option<String>,
) {
    let report = storage::report(&roots, Timestamp::now(), addr.as_ref(), udid.as_deref()).await;
    let Ok(shown) = notifier.post(&messages::storage(&report)).await else {
        return;
    };
    if shown.answer(ASK_WAIT).await.as_deref() != Some(messages::TRASH_LEFTOVERS) {
        return;
    }
    let items = report.items;
    let moved = tokio::task::spawn_blocking(move || storage::move_leftovers(&items, &roots)).await;
    let message = match moved {
        Ok((freed, errors)) if errors.is_empty() => Message::new(
            "Moved to the trash",
            format!(
                "{} freed once the trash is emptied.",
                crate::humanize::bytes(freed)
            ),
        ),
        Ok((_, errors)) => Message::new("Some items were not moved", errors.join("\n")),
        Err(e) => Message::new("Nothing was moved", e.to_string()),
    };
    let _ = notifier.post(&message).await;
}

/// Opens a file or folder with the desktop's default program.
async fn open(path: &Path) -> Result<(), String> {
    crate::actions::show(path)
}
