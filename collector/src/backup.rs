//! The store's integrity and its copies (`quick_check` before and while
//! `serve` runs, the refusal to start on a damaged, empty or missing store,
//! and `backup`): store maintenance, kept in `store::backup`; re-exported
//! here for the commands that use it.

pub use crate::store::backup::{
    BackupError, CheckError, RESTORE_HINT, backup, check_before_serve, check_file, quick_check,
};
