//! Matching the users of two sides (a backup and a pool, or two backups) by a key, in memory
//! that does not grow with the pool: both sides are spread over unnamed temporary partition
//! files by a hash of the key (compressed, `packed`), and joined one partition at a time,
//! holding only one partition of one side in memory.

use crate::backup_file::UserRecord;
use crate::packed::{LARGE_BLOCK, Packed};
use anyhow::Result;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

/// Users held in memory at once: one partition of the right side.
const USERS_PER_PARTITION: u64 = 50_000;
/// At most this many partitions (two open files each, and a block of each in memory).
const MAX_PARTITIONS: u64 = 256;

/// Two sides being collected; [`Join::run`] pairs them up. The left side holds users; the
/// right side users, or whatever a caller keeps with them (`R`).
pub struct Join<R = UserRecord> {
    left: Vec<Packed>,
    right: Vec<Packed>,
    _right: std::marker::PhantomData<R>,
}

impl<R: Serialize + DeserializeOwned> Join<R> {
    /// `expected` is about the larger side's number of users; it sets the partition count.
    pub fn new(dir: &Path, expected: u64) -> Result<Join<R>> {
        let n = expected
            .div_ceil(USERS_PER_PARTITION)
            .clamp(1, MAX_PARTITIONS);
        let files =
            || -> Result<Vec<Packed>> { (0..n).map(|_| Packed::new(dir, LARGE_BLOCK)).collect() };
        Ok(Join {
            left: files()?,
            right: files()?,
            _right: std::marker::PhantomData,
        })
    }

    pub fn push_left(&mut self, key: &str, user: &UserRecord) -> Result<()> {
        push(&mut self.left, key, user)
    }

    pub fn push_right(&mut self, key: &str, user: &R) -> Result<()> {
        push(&mut self.right, key, user)
    }

    /// Calls `each` with every left user and the right user of the same key (if any), in the
    /// left side's order within each partition, then with every right user no left user
    /// matched. A key that appears twice on the right keeps the last.
    pub fn run(
        self,
        mut each: impl FnMut(Option<UserRecord>, Option<R>) -> Result<()>,
    ) -> Result<()> {
        for (left, right) in self.left.into_iter().zip(self.right) {
            let mut theirs: HashMap<String, R> = HashMap::new();
            right.finish()?.for_each(|(key, user): (String, R)| {
                theirs.insert(key, user);
                Ok(())
            })?;
            left.finish()?
                .for_each(|(key, user): (String, UserRecord)| {
                    let other = theirs.remove(&key);
                    each(Some(user), other)
                })?;
            let mut rest: Vec<(String, R)> = theirs.into_iter().collect();
            rest.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, user) in rest {
                each(None, Some(user))?;
            }
        }
        Ok(())
    }
}

fn push<T: Serialize>(files: &mut [Packed], key: &str, user: &T) -> Result<()> {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    let n = files.len() as u64;
    files[(h.finish() % n) as usize].push(&(key, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserRecord {
        crate::backup_file::test_user(name, &[])
    }

    #[test]
    fn pairs_every_key_once_across_many_partitions() {
        let dir = tempfile::tempdir().unwrap();
        // 200,000 expected users: four partitions.
        let mut join: Join = Join::new(dir.path(), 200_000).unwrap();
        assert_eq!(join.left.len(), 4);
        for i in 0..1000 {
            join.push_left(&format!("k{i}"), &user(&format!("l{i}")))
                .unwrap();
        }
        for i in 500..1500 {
            join.push_right(&format!("k{i}"), &user(&format!("r{i}")))
                .unwrap();
        }
        let (mut both, mut left_only, mut right_only) = (0, 0, 0);
        join.run(|l, r| {
            match (l, r) {
                (Some(l), Some(r)) => {
                    assert_eq!(l.username[1..], r.username[1..]);
                    both += 1;
                }
                (Some(_), None) => left_only += 1,
                (None, Some(_)) => right_only += 1,
                (None, None) => unreachable!(),
            }
            Ok(())
        })
        .unwrap();
        assert_eq!((both, left_only, right_only), (500, 500, 500));
    }
}
