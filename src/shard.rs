//! Shards: `k/n` parsing, the slice of the `sub` space a shard owns, the `sub ^= "…"` prefixes
//! that tile it, and shard file names.
//!
//! Every user has a `sub`, a lower-case UUID. Shard `k` of `n` owns the contiguous slice
//! `[(k-1)/n, k/n)` of the UUID space, measured at a hex depth `d` (the number of leading hex
//! digits looked at) that depends on `n` alone: the smallest `d ≥ 1` with `16^d ≥ 20·n`. At that
//! depth every shard holds either `⌊16^d/n⌋` or `⌈16^d/n⌉` of the `16^d` prefixes, and since
//! `⌊16^d/n⌋ ≥ 20`, no shard is more than 5% larger than another. The slice is then written as
//! the smallest set of prefixes that tiles it: sixteen aligned sibling prefixes collapse into
//! their parent.
//!
//! A shard also lists the members of some of the pool's groups, so that together the shards
//! of a set list each group once: group `G` belongs to shard [`owner`]`(G, n)`, the first 8
//! bytes of the SHA-256 of its name (UTF-8), read as a big-endian number, modulo `n`, plus 1.
//!
//! Both mappings are part of the backup format: the same `k/n` selects the same users and the
//! same groups in every version of `cbr`. The tests pin them with fixed expected values.

use std::fmt;
use std::str::FromStr;

/// The largest shard count accepted; at this size the depth is 6 hex digits.
pub const MAX_TOTAL: u32 = 65_536;

/// One deterministic slice of a pool: shard `index` of `total`, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub total: u32,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid shard {s:?}: expected k/n, e.g. 2/3"))?;
        let parse = |part: &str, what: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("invalid shard {s:?}: {what} {part:?} is not a whole number"))
        };
        let (index, total) = (parse(k, "index")?, parse(n, "total")?);
        if total == 0 || total > MAX_TOTAL {
            return Err(format!(
                "invalid shard {s:?}: total must be between 1 and {MAX_TOTAL}"
            ));
        }
        if index == 0 || index > total {
            return Err(format!(
                "invalid shard {s:?}: index must be between 1 and {total} (shards are numbered from 1)"
            ));
        }
        Ok(Shard { index, total })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

impl Shard {
    /// Hex digits of `sub` that decide which shard a user belongs to.
    pub fn depth(total: u32) -> u32 {
        let need = 20 * u64::from(total);
        (1..).find(|&d| 16u64.pow(d) >= need).unwrap_or(1)
    }

    /// The half-open range of depth-`d` prefixes, as numbers, that this shard owns.
    fn range(&self) -> (u64, u64, u32) {
        let d = Self::depth(self.total);
        let units = 16u64.pow(d);
        let n = u64::from(self.total);
        let start = (u64::from(self.index) - 1) * units / n;
        let end = u64::from(self.index) * units / n;
        (start, end, d)
    }

    /// The smallest set of `sub` prefixes, in ascending order, that tiles this shard.
    /// `[""]` means the whole pool.
    pub fn prefixes(&self) -> Vec<String> {
        let (start, end, d) = self.range();
        cover(start, end, d)
    }

    /// The fraction of the pool this shard holds, for progress estimates.
    pub fn fraction(&self) -> f64 {
        let (start, end, d) = self.range();
        (end - start) as f64 / 16f64.powi(d as i32)
    }

    /// Whether a user with this `sub` belongs to this shard.
    pub fn contains_sub(&self, sub: &str) -> bool {
        let (start, end, d) = self.range();
        let digits = sub.get(..d as usize).unwrap_or("");
        match u64::from_str_radix(digits, 16) {
            Ok(v) if digits.len() == d as usize => start <= v && v < end,
            _ => false,
        }
    }
}

/// The shard of `total` that lists the members of the group named `group`: the first 8 bytes
/// of the name's SHA-256 as a big-endian number, modulo `total`, plus 1.
pub fn owner(group: &str, total: u32) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(group.as_bytes());
    let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (head % u64::from(total.max(1))) as u32 + 1
}

impl Shard {
    /// Whether this shard lists the members of the group named `group` ([`owner`]).
    pub fn owns_group(&self, group: &str) -> bool {
        owner(group, self.total) == self.index
    }
}

/// Whether `prefixes`, in order, tile exactly the slice of the `sub` space `shard` owns (the
/// whole space for `None`): each lower-case hex of at most 8 digits, none overlapping, no gap.
/// A list read back from elsewhere (a resume state) is checked with this before it is used.
pub fn tiles(shard: Option<Shard>, prefixes: &[String]) -> bool {
    const DEPTH: u32 = 8;
    let (start, end) = match shard {
        None => (0, 16u64.pow(DEPTH)),
        Some(s) => {
            let (start, end, d) = s.range();
            let scale = 16u64.pow(DEPTH - d);
            (start * scale, end * scale)
        }
    };
    let mut next = start;
    for p in prefixes {
        let hex = p.len() <= DEPTH as usize
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return false;
        }
        let scale = 16u64.pow(DEPTH - p.len() as u32);
        let value = if p.is_empty() {
            0
        } else {
            u64::from_str_radix(p, 16).expect("hex digits")
        };
        if value * scale != next {
            return false;
        }
        next += scale;
    }
    next == end && !prefixes.is_empty()
}

/// Tiles the prefix numbers `[start, end)` at depth `d` with the fewest aligned prefixes.
fn cover(mut start: u64, end: u64, d: u32) -> Vec<String> {
    let mut out = Vec::new();
    while start < end {
        // Grow the block while it stays aligned and inside the range.
        let mut level = 0;
        while level < d {
            let block = 16u64.pow(level + 1);
            if !start.is_multiple_of(block) || start + block > end {
                break;
            }
            level += 1;
        }
        let len = (d - level) as usize;
        let value = start / 16u64.pow(level);
        out.push(if len == 0 {
            String::new()
        } else {
            format!("{value:0len$x}")
        });
        start += 16u64.pow(level);
    }
    out
}

/// Splits prefixes, shortest (largest) first, until there are at least `min_count` of them.
/// The result tiles the same space, still in ascending order, so listing the prefixes one after
/// another yields users in the same order whatever the concurrency.
pub fn refine(prefixes: &[String], min_count: usize) -> Vec<String> {
    let mut out: Vec<String> = prefixes.to_vec();
    while out.len() < min_count {
        let Some(pos) = out
            .iter()
            .enumerate()
            .filter(|(_, p)| p.len() < 8)
            .min_by_key(|(_, p)| p.len())
            .map(|(i, _)| i)
        else {
            break;
        };
        let parent = out.remove(pos);
        let children = (0..16).map(|c| format!("{parent}{c:x}"));
        out.splice(pos..pos, children);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shard(s: &str) -> Shard {
        s.parse().unwrap()
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn hex_range(prefix: &str, from: u32, to: u32) -> Vec<String> {
        (from..=to).map(|i| format!("{prefix}{i:x}")).collect()
    }

    #[test]
    fn parses_valid_and_rejects_invalid_shards() {
        assert_eq!(shard("2/3"), Shard { index: 2, total: 3 });
        assert_eq!(shard("1/1"), Shard { index: 1, total: 1 });
        for bad in ["0/3", "4/3", "a/b", "3", "1/0", "", "/", "1/65537", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad} should be rejected");
        }
        let err = "0/3".parse::<Shard>().unwrap_err();
        assert!(err.contains("between 1 and 3"), "{err}");
    }

    #[test]
    fn depth_is_fine_enough_for_five_percent() {
        assert_eq!(Shard::depth(1), 2);
        assert_eq!(Shard::depth(12), 2);
        assert_eq!(Shard::depth(13), 3);
        assert_eq!(Shard::depth(204), 3);
        assert_eq!(Shard::depth(205), 4);
        assert_eq!(Shard::depth(4096), 5);
        assert_eq!(Shard::depth(MAX_TOTAL), 6);
    }

    /// The mapping is part of the file format: these sets must never change.
    #[test]
    fn fixed_prefix_sets() {
        assert_eq!(shard("1/1").prefixes(), strs(&[""]));
        assert_eq!(shard("1/2").prefixes(), hex_range("", 0, 7));
        assert_eq!(shard("2/2").prefixes(), hex_range("", 8, 15));
        let mut one_of_three = hex_range("", 0, 4);
        one_of_three.extend(hex_range("5", 0, 4));
        assert_eq!(shard("1/3").prefixes(), one_of_three);
        let mut two_of_three = hex_range("5", 5, 15);
        two_of_three.extend(hex_range("", 6, 9));
        two_of_three.extend(hex_range("a", 0, 9));
        assert_eq!(shard("2/3").prefixes(), two_of_three);
        let mut three_of_three = hex_range("a", 10, 15);
        three_of_three.extend(hex_range("", 11, 15));
        assert_eq!(shard("3/3").prefixes(), three_of_three);
        assert_eq!(shard("1/16").prefixes(), strs(&["0"]));
        assert_eq!(shard("16/16").prefixes(), strs(&["f"]));
        assert_eq!(shard("7/10").prefixes(), {
            let mut v = hex_range("9", 9, 15);
            v.extend(hex_range("", 10, 10));
            v.extend(hex_range("b", 0, 2));
            v
        });
        assert_eq!(shard("1000/4096").prefixes(), strs(&["3e7"]));
        assert_eq!(shard("2/5").prefixes(), {
            let mut v = hex_range("3", 3, 15);
            v.extend(strs(&["4", "5"]));
            v.extend(hex_range("6", 0, 5));
            v
        });
    }

    /// Which shard lists a group's members is part of the file format: never changes.
    #[test]
    fn fixed_group_owners() {
        let owners = |g: &str| [1, 2, 3, 8, MAX_TOTAL].map(|n| owner(g, n));
        assert_eq!(owners("admins"), [1, 2, 3, 4, 36412]);
        assert_eq!(owners("everyone"), [1, 1, 2, 5, 39245]);
        assert_eq!(owners("viewers"), [1, 1, 1, 5, 49621]);
        assert_eq!(owners("管理者"), [1, 2, 1, 8, 43016]);
        assert_eq!(owners("🚀-launch-team"), [1, 2, 1, 2, 59106]);
        assert_eq!(owners(""), [1, 1, 2, 5, 7189]);
        assert!(shard("3/3").owns_group("admins"));
        assert!(!shard("1/3").owns_group("admins"));
    }

    #[test]
    fn ten_shards_are_within_five_percent() {
        let sizes: Vec<f64> = (1..=10)
            .map(|k| {
                Shard {
                    index: k,
                    total: 10,
                }
                .fraction()
            })
            .collect();
        let (min, max) = sizes
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        assert!(max / min <= 1.05, "{sizes:?}");
    }

    #[test]
    fn contains_sub_follows_the_prefixes() {
        let s = shard("2/3");
        assert!(s.contains_sub("55000000-0000-4000-8000-000000000000"));
        assert!(s.contains_sub("a9ffffff-0000-4000-8000-000000000000"));
        assert!(!s.contains_sub("54ffffff-0000-4000-8000-000000000000"));
        assert!(!s.contains_sub("aa000000-0000-4000-8000-000000000000"));
        assert!(!s.contains_sub(""));
        assert!(!s.contains_sub("zz"));
    }

    #[test]
    fn refine_splits_shortest_first_and_keeps_order() {
        assert_eq!(refine(&strs(&[""]), 16), hex_range("", 0, 15));
        let refined = refine(&shard("1/3").prefixes(), 16);
        assert_eq!(refined.len(), 25);
        assert_eq!(&refined[..16], &hex_range("0", 0, 15)[..]);
        let mut sorted = refined.clone();
        sorted.sort();
        assert_eq!(refined, sorted);
    }

    #[test]
    fn tiling_checks_order_gaps_and_overlaps() {
        assert!(tiles(None, &refine(&strs(&[""]), 16)));
        assert!(tiles(None, &strs(&[""])));
        let s = shard("2/3");
        assert!(tiles(Some(s), &s.prefixes()));
        assert!(tiles(Some(s), &refine(&s.prefixes(), 300)));
        let mut gap = refine(&strs(&[""]), 16);
        gap.remove(3);
        assert!(!tiles(None, &gap));
        let mut swapped = refine(&strs(&[""]), 16);
        swapped.swap(1, 2);
        assert!(!tiles(None, &swapped));
        let mut overlap = refine(&strs(&[""]), 16);
        overlap.insert(4, "3f".into());
        assert!(!tiles(None, &overlap));
        assert!(!tiles(None, &[]));
        assert!(!tiles(
            None,
            &strs(&[
                "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "F"
            ])
        ));
        assert!(!tiles(Some(shard("1/3")), &shard("2/3").prefixes()));
    }

    /// Numbers the prefixes of a cover at depth 8 so coverage can be checked exactly.
    fn spans(prefixes: &[String]) -> Vec<(u64, u64)> {
        prefixes
            .iter()
            .map(|p| {
                let pad = 8 - p.len();
                let v = if p.is_empty() {
                    0
                } else {
                    u64::from_str_radix(p, 16).unwrap()
                };
                (v << (4 * pad), (v + 1) << (4 * pad))
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// For any n, the shards are disjoint, in order, and together cover the whole space.
        #[test]
        fn shards_tile_the_space(total in 1u32..=MAX_TOTAL) {
            let mut next = 0u64;
            let mut sizes = Vec::new();
            for index in 1..=total.min(600) {
                let s = Shard { index, total };
                let spans = spans(&s.prefixes());
                let size: u64 = spans.iter().map(|(a, b)| b - a).sum();
                sizes.push(size);
                for (a, b) in spans {
                    prop_assert_eq!(a, next, "gap or overlap in {}", s);
                    next = b;
                }
            }
            if total <= 600 {
                prop_assert_eq!(next, 1u64 << 32);
                let min = *sizes.iter().min().unwrap() as f64;
                let max = *sizes.iter().max().unwrap() as f64;
                prop_assert!(max / min <= 1.05, "imbalance {} for n={}", max / min, total);
            }
        }

        /// Spot check of large n: the last shard ends exactly at the end of the space and
        /// neighbours meet; few prefixes per shard.
        #[test]
        fn large_totals_meet_at_boundaries(total in 600u32..=MAX_TOTAL, pick in 0u32..MAX_TOTAL) {
            let index = pick % (total - 1) + 1;
            let this = spans(&Shard { index, total }.prefixes());
            let next = spans(&Shard { index: index + 1, total }.prefixes());
            prop_assert_eq!(this.last().unwrap().1, next.first().unwrap().0);
            let last = spans(&Shard { index: total, total }.prefixes());
            prop_assert_eq!(last.last().unwrap().1, 1u64 << 32);
            prop_assert!(this.len() <= 2 * 15 * Shard::depth(total) as usize);
        }

        #[test]
        fn refine_preserves_the_tiling(total in 1u32..300, index in 1u32..300, min in 1usize..300) {
            let index = (index - 1) % total + 1;
            let base = Shard { index, total }.prefixes();
            let refined = refine(&base, min);
            prop_assert!(refined.len() >= min.min(16usize.pow(8)));
            let a = spans(&base);
            let b = spans(&refined);
            prop_assert_eq!(a.first().unwrap().0, b.first().unwrap().0);
            prop_assert_eq!(a.last().unwrap().1, b.last().unwrap().1);
            for w in b.windows(2) {
                prop_assert_eq!(w[0].1, w[1].0);
            }
        }

        #[test]
        fn every_sub_is_in_exactly_one_shard(total in 1u32..200, v in any::<u32>()) {
            let sub = format!("{v:08x}-0000-4000-8000-000000000000");
            let owners = (1..=total).filter(|&index| Shard { index, total }.contains_sub(&sub)).count();
            prop_assert_eq!(owners, 1);
        }
    }
}
