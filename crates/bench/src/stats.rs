//! The few statistics the reports use: medians over repeats and guarded ratios. Repeats are interleaved
//! across configurations, so a median per configuration is robust to a noisy neighbour on 2 cores.

use std::collections::HashMap;

/// Median of `v` (mean of the middle two for an even count); NaN for an empty slice.
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 { s[m] } else { (s[m - 1] + s[m]) / 2.0 }
}

/// `a / b`, NaN when `b` is zero or either side is not finite.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 || !a.is_finite() || !b.is_finite() { f64::NAN } else { a / b }
}

/// `x / count` as a float, 0 when `count` is 0 (per-PDU and per-message figures).
pub fn per(x: u64, count: u64) -> f64 {
    if count == 0 { 0.0 } else { x as f64 / count as f64 }
}

/// A comparison of two cells measured back to back in the same rounds: each round's ratio, and their
/// median and range. Pairing by round cancels the machine's slow and fast phases, which move both
/// cells of a round together.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PairRatios {
    /// (round, a over b) for every round where both sides have a finite value, in round order.
    pub pairs: Vec<(usize, f64)>,
    /// Median of the ratios (NaN with no pairs).
    pub median: f64,
    /// Smallest ratio (NaN with no pairs).
    pub min: f64,
    /// Largest ratio (NaN with no pairs).
    pub max: f64,
}

impl PairRatios {
    /// Pairs `a` and `b` by round (rounds only one side has are left out) and takes `a / b` per round.
    pub fn of(a: &HashMap<usize, f64>, b: &HashMap<usize, f64>) -> PairRatios {
        let mut pairs: Vec<(usize, f64)> = a
            .iter()
            .filter_map(|(r, x)| {
                let q = ratio(*x, *b.get(r)?);
                q.is_finite().then_some((*r, q))
            })
            .collect();
        pairs.sort_by_key(|p| p.0);
        let v: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        if v.is_empty() {
            return PairRatios { pairs, median: f64::NAN, min: f64::NAN, max: f64::NAN };
        }
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        PairRatios { median: median(&v), min, max, pairs }
    }

    /// The ratios alone, in round order.
    pub fn ratios(&self) -> Vec<f64> {
        self.pairs.iter().map(|p| p.1).collect()
    }
}

/// The order of `n` cells in round `round`: forwards in even rounds, backwards in odd ones, so no cell
/// always follows the same one (a cell measured after a busy one can inherit its heat or its caches).
pub fn round_order(n: usize, round: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    if round % 2 == 1 {
        v.reverse();
    }
    v
}

/// Bytes in a GiB.
pub const GIB: f64 = (1u64 << 30) as f64;

/// GiB per second for `bytes` moved in `wall`.
pub fn gib_per_s(bytes: u64, wall: std::time::Duration) -> f64 {
    bytes as f64 / GIB / wall.as_secs_f64()
}

/// CPU milliseconds spent per GiB moved.
pub fn cpu_ms_per_gib(cpu: std::time::Duration, bytes: u64) -> f64 {
    cpu.as_secs_f64() * 1e3 / (bytes as f64 / GIB)
}

/// A byte count as a short human size: `0`, `512`, `4K`, `1M` (powers of two).
pub fn human_size(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}M", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{}K", n >> 10)
    } else {
        n.to_string()
    }
}

/// Parses `4096`, `4K`, `4k`, `1M`, `1MiB` into bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix("B")).unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1usize << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<usize>().map(|n| n * mult).map_err(|e| format!("bad size {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_sizes() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert!(ratio(1.0, 0.0).is_nan());
        assert_eq!(human_size(0), "0");
        assert_eq!(human_size(512), "512");
        assert_eq!(human_size(8192), "8K");
        assert_eq!(human_size(1 << 20), "1M");
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("x").is_err());
    }
    #[test]
    fn pair_ratios_pair_by_round_and_skip_the_unpaired() {
        let a: HashMap<usize, f64> = [(0, 200.0), (1, 100.0), (2, 300.0), (3, 50.0)].into();
        // Round 3 has no b, round 4 no a, round 2's b is zero (no ratio).
        let b: HashMap<usize, f64> = [(0, 100.0), (1, 100.0), (2, 0.0), (4, 10.0)].into();
        let p = PairRatios::of(&a, &b);
        assert_eq!(p.pairs, vec![(0, 2.0), (1, 1.0)]);
        assert_eq!((p.median, p.min, p.max), (1.5, 1.0, 2.0));
        assert_eq!(p.ratios(), vec![2.0, 1.0]);
        let none = PairRatios::of(&a, &HashMap::new());
        assert!(none.pairs.is_empty() && none.median.is_nan() && none.min.is_nan() && none.max.is_nan());
    }

    #[test]
    fn rounds_alternate_direction() {
        assert_eq!(round_order(3, 0), vec![0, 1, 2]);
        assert_eq!(round_order(3, 1), vec![2, 1, 0]);
        assert_eq!(round_order(3, 2), vec![0, 1, 2]);
        assert!(round_order(0, 1).is_empty());
    }
}
