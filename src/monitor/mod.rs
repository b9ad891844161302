//! The monitor: polls every backup (Unstuck's and other tools'), notices a
//! stall, names its likely cause and decides which notifications to show.
//! `core` decides from plain observations and a given time; `observe` reads
//! the world into those observations. Showing notifications and printing
//! are the shell's (`notify`, `cli`).

pub mod core;
pub mod model;
pub mod observe;
pub mod shell;

pub use core::{Effect, Monitor, MonitorConfig};
pub use model::*;
