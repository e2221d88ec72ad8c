//! What a hot reload (the rules directory, the contracts file) remembers of
//! the version it last rejected, so one bad edit is counted once in its
//! error counter: not once per problem in it, and not again by every reload
//! that finds the same bad version (an editor's swap file or another file
//! in the directory changed, the file was touched, a burst of events was
//! split in two).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

/// The last rejected version; see the module docs.
#[derive(Debug, Default)]
pub struct Rejections {
    last: Option<u64>,
}

impl Rejections {
    /// Notes that `version` was rejected; true when it is not the version
    /// rejected last, i.e. when it should be counted.
    pub fn rejected(&mut self, version: u64) -> bool {
        self.last.replace(version) != Some(version)
    }

    /// Notes that a good version was accepted: a bad one after it counts again.
    pub fn accepted(&mut self) {
        self.last = None;
    }
}

/// Identifies the version of `files` (names and contents, in the order
/// given; an unreadable file by its error).
pub fn version_of<'a>(files: impl IntoIterator<Item = &'a Path>) -> u64 {
    let mut h = DefaultHasher::new();
    for f in files {
        f.hash(&mut h);
        match std::fs::read(f) {
            Ok(bytes) => bytes.hash(&mut h),
            Err(e) => e.kind().to_string().hash(&mut h),
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_same_bad_version_counts_once_and_again_after_a_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.toml");
        std::fs::write(&f, "broken = [").unwrap();
        let mut r = Rejections::default();
        let v1 = version_of([f.as_path()]);
        assert!(r.rejected(v1));
        assert!(!r.rejected(version_of([f.as_path()])));
        std::fs::write(&f, "broken = {").unwrap();
        assert!(r.rejected(version_of([f.as_path()])), "another bad edit");
        std::fs::write(&f, "broken = [").unwrap();
        assert!(r.rejected(version_of([f.as_path()])), "back to the first: a new edit");
        r.accepted();
        assert!(r.rejected(version_of([f.as_path()])));
        assert_ne!(version_of([dir.path().join("gone.toml").as_path()]), v1);
    }
}
