//! The monitor: polls every backup (Unstuck's and other tools'), notices a
//! stall, names its likely cause and decides which notifications to show.
//! `core` is the state machine over plain observations and a given time,
//! `diagnose` names the causes of a stall or failure and `notices` words and
//! de-duplicates notifications; `observe` reads the world into observations;
//! `runs` turns other programs' runs as seen into the history's `Run`s.
//! Showing notifications and printing are the shell's (`notify`, `cli`).

pub mod core;
mod diagnose;
pub mod model;
mod notices;
pub mod observe;
pub mod runs;
pub mod shell;

pub use core::{Effect, Monitor, MonitorConfig};
pub use model::*;
