//! Tumbling windows: fixed size, contiguous, one window per event —
//! `(k·size, (k+1)·size]`, aligned to the epoch.

use super::aligned::Assigner;

pub fn assigner(size: i64) -> Assigner {
    Assigner { size, hop: size }
}

/// The end of the one tumbling window holding `t`.
#[inline]
pub fn end_of(t: i64, size: i64) -> i64 {
    // (start, end]: a time on a boundary belongs to the window it ends.
    // Saturating: exact for every time inside `TimeRange::LIMIT`, and no
    // panic or wrap outside it.
    t.div_euclid(size).saturating_mul(size).saturating_add(if t.rem_euclid(size) == 0 { 0 } else { size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_on_a_boundary_closes_the_window_before_it() {
        assert_eq!(end_of(300_000, 300_000), 300_000);
        assert_eq!(end_of(300_001, 300_000), 600_000);
        assert_eq!(end_of(1, 300_000), 300_000);
        assert_eq!(end_of(0, 10), 0);
        assert_eq!(end_of(-1, 10), 0);
        assert_eq!(end_of(-10, 10), -10);
        assert_eq!(assigner(10).ends(25).collect::<Vec<_>>(), vec![30]);
    }

    #[test]
    fn the_extreme_times_end_without_wrapping_or_looping() {
        let week = 7 * 86_400_000;
        for t in [i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1] {
            for a in [assigner(week), super::super::hopping::assigner(week, 1000), assigner(1)] {
                assert!(a.ends(t).count() <= (a.size / a.hop) as usize + 1, "{t}");
            }
        }
    }
}
