//! A hostile simulated iPhone against the engine: every attack is refused,
//! nothing outside the phone's own folder changes, the last complete backup
//! stays byte for byte, and the process ends with a message (an abort here
//! would end the whole test binary).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use unstuck::backup_folder::BackupState;
use unstuck::device::DeviceError;
use unstuck::engine::{self, EngineError};
use unstuck::sim::{Hostile, OTHER_UDID, Sim};

use super::engine::{options, run};
use super::sim::{UDID, config};
use crate::util;

/// A backup root as a user has it: this phone's complete backup, another
/// phone's backup, an unrelated file; and a folder outside the root.
struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    async fn new(sim: &Sim) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join(OTHER_UDID)).unwrap();
        for (name, bytes) in [
            ("Manifest.plist", &b"the other phone's manifest"[..]),
            ("Status.plist", b"the other phone's status"),
        ] {
            fs::write(root.join(OTHER_UDID).join(name), bytes).unwrap();
        }
        fs::write(root.join("notes.txt"), b"not a backup").unwrap();
        fs::create_dir_all(dir.path().join("outside")).unwrap();
        run(sim, &options(&root), |_, _| {}).await.0.unwrap();
        Scene { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Every file under the scene (root and outside) with its bytes, and
    /// every link with its target.
    fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        util::snapshot_tree(self.dir.path())
            .into_iter()
            .filter(|(_, (dir, ..))| !dir)
            .map(|(path, (.., bytes))| {
                let link = fs::read_link(&path).ok();
                let bytes = link.map_or(bytes, |l| l.to_string_lossy().into_owned().into_bytes());
                (path, bytes)
            })
            .collect()
    }
}

async fn attack(how: Hostile, prepare: impl FnOnce(&Path)) -> (EngineError, Scene) {
    let sim = Sim::start(config()).await.unwrap();
    let scene = Scene::new(&sim).await;
    prepare(&scene.root().join(UDID));
    let before = scene.files();
    sim.update(|c| c.hostile = Some(how));
    let (result, _) = run(&sim, &options(&scene.root()), |_, _| {}).await;
    let err = result.expect_err("a hostile phone's backup must not succeed");
    let after = scene.files();
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{how:?}: files came or went ({err})"
    );
    for (path, bytes) in &before {
        assert!(after[path] == *bytes, "{how:?} changed {}", path.display());
    }
    let folder = scene.root().join(UDID);
    assert_eq!(util::read(&folder).state, BackupState::Complete, "{how:?}");
    assert!(!engine::snapshot::snapshot_path(&folder).exists());
    assert!(!Path::new("/tmp/unstuck-escaped").exists());
    (err, scene)
}

fn assert_refused(err: &EngineError, how: Hostile) {
    assert!(matches!(err, EngineError::Refused(_)), "{how:?}: {err}");
    assert_eq!(err.exit_code(), 9);
    assert!(err.to_string().contains("refused"), "{err}");
}

#[tokio::test]
async fn paths_outside_the_phone_folder_are_refused() {
    for how in [
        Hostile::ReadOtherPhone,
        Hostile::RemoveOtherPhone,
        Hostile::RemoveParent,
        Hostile::RemoveOwnFolder,
        Hostile::WriteOutside,
        Hostile::WriteAbsolute,
        Hostile::WriteDrive,
        Hostile::MoveOutside,
        Hostile::CopyOutside,
    ] {
        let (err, _) = attack(how, |_| {}).await;
        assert_refused(&err, how);
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_link_inside_the_folder_is_not_followed() {
    let how = Hostile::WriteThroughLink;
    let (err, scene) = attack(how, |folder| {
        let outside = folder.parent().unwrap().parent().unwrap().join("outside");
        fs::write(outside.join("secret"), b"keep").unwrap();
        std::os::unix::fs::symlink(&outside, folder.join("zz")).unwrap();
        // A part file that is a link: the engine's own writes (Info.plist)
        // replace it, never write through it.
        std::os::unix::fs::symlink(
            outside.join("secret"),
            folder.join("Info.plist.unstuck-part"),
        )
        .unwrap();
    })
    .await;
    assert_refused(&err, how);
    assert!(!scene.dir.path().join("outside/escaped").exists());
    assert_eq!(
        fs::read(scene.dir.path().join("outside/secret")).unwrap(),
        b"keep"
    );
}

/// CopyItem is a legal request, but it must not write into the file that
/// the snapshot shares: after the failed run, Manifest.db is the old one.
#[tokio::test]
async fn a_copy_over_a_shared_file_leaves_the_last_backup_intact() {
    let (err, _) = attack(Hostile::CopyOverShared, |_| {}).await;
    assert!(matches!(err, EngineError::Phone { code: 1, .. }), "{err}");
}

#[tokio::test]
async fn frames_that_claim_gigabytes_are_refused_before_allocating() {
    for how in [Hostile::HugeFrame, Hostile::HugeBlock] {
        let (err, _) = attack(how, |_| {}).await;
        assert!(
            matches!(
                err,
                EngineError::Device(DeviceError::Protocol(_) | DeviceError::NoDevice { .. })
                    | EngineError::Stalled { .. }
            ),
            "{how:?}: {err}"
        );
    }
}

#[tokio::test]
async fn plists_built_to_explode_are_refused() {
    for how in [Hostile::BillionLaughs, Hostile::DeepNesting] {
        let (err, _) = attack(how, |_| {}).await;
        assert!(
            matches!(err, EngineError::Device(DeviceError::Protocol(_))),
            "{how:?}: {err}"
        );
    }
}

/// The real binary: a refused path is exit 9 with the reason.
#[test]
fn the_backup_command_names_what_it_refused() {
    let _programs = util::backup_programs_lock();
    let mut c = config();
    c.hostile = Some(Hostile::RemoveParent);
    let (_runtime, sim) = util::sim_on_runtime(c);
    let home = util::Home::new();
    let dest = tempfile::tempdir().unwrap();
    let run = home.run_on(
        &sim.usbmuxd_address(),
        &["backup", "--dest", dest.path().to_str().unwrap()],
    );
    assert_eq!(run.code(), Some(9), "{}", run.stderr());
    assert!(run.stderr().contains("\"../\""), "{}", run.stderr());
    assert!(dest.path().exists());
}

/// usbmuxd names the phone; a UDID that is a path is never joined to one.
#[tokio::test]
async fn a_udid_that_names_a_path_is_passed_over() {
    let mut c = config();
    c.udid = "../../escaped".into();
    let sim = Sim::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("root");
    let (result, _) = run(&sim, &options(&dest), |_, _| {}).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, EngineError::Device(DeviceError::NoDevice { .. })),
        "{err}"
    );
    let list = unstuck::device::list(
        &unstuck::device::MuxAddress::Tcp(sim.addr()),
        unstuck::device::DEADLINE,
    )
    .await
    .unwrap();
    assert!(list.is_empty(), "{list:?}");
    assert!(!dir.path().join("escaped").exists());
}
