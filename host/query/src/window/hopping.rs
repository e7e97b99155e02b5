//! Hopping windows: `size` long, one starting every `hop` —
//! `(k·hop − size, k·hop]`, aligned to the epoch; an event is in
//! `ceil(size / hop)` windows or one fewer.

use super::aligned::Assigner;

pub fn assigner(size: i64, hop: i64) -> Assigner {
    Assigner { size, hop }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_in_every_window_whose_range_holds_it() {
        // 10-wide windows every 5: (−5,5], (0,10], (5,15], ...
        assert_eq!(assigner(10, 5).ends(7).collect::<Vec<_>>(), vec![10, 15]);
        assert_eq!(assigner(10, 5).ends(10).collect::<Vec<_>>(), vec![10, 15]);
        assert_eq!(assigner(10, 5).ends(11).collect::<Vec<_>>(), vec![15, 20]);
        assert_eq!(assigner(10, 3).ends(7).collect::<Vec<_>>(), vec![9, 12, 15]);
        assert_eq!(assigner(10, 3).ends(-2).collect::<Vec<_>>(), vec![0, 3, 6]);
    }
}
