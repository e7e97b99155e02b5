//! Where a source stands: what a checkpoint records and a restart resumes from.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a source is, after the events it handed out so far.
///
/// The variants are kept in this order: checkpoints store them by index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Position {
    /// A file: the byte offset of the next line, and lines read so far.
    File { offset: u64, line: u64 },
    /// A partitioned log (a Kafka topic): the next offset to read, per
    /// partition this process reads.
    Partitioned { topic: String, offsets: BTreeMap<i32, i64> },
    /// A generated sequence: the number of the next event, and the event
    /// time of the first (so that a resumed sequence keeps its times).
    Sequence { next: u64, start_ms: i64 },
}

impl Position {
    /// Stops recording `partitions` (another process owns them now).
    pub fn release(&mut self, partitions: &[i32]) {
        if let Position::Partitioned { offsets, .. } = self {
            for p in partitions {
                offsets.remove(p);
            }
        }
    }
}

/// Where a source without a recorded position begins (and where a replay,
/// `weir run --from`, begins every source that can).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    /// The first event at or after this time (epoch ms).
    Time(i64),
}

impl std::str::FromStr for StartAt {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "earliest" => Ok(StartAt::Earliest),
            "latest" => Ok(StartAt::Latest),
            t => chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| StartAt::Time(d.timestamp_millis()))
                .map_err(|e| format!("`{t}` is neither \"earliest\", \"latest\" nor an RFC 3339 time ({e})")),
        }
    }
}

/// Where a run starts (`weir run --from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The last checkpoint (or, without one, each source's own start).
    #[default]
    Checkpoint,
    /// A replay: checkpoints are set aside, state starts empty, and every
    /// source that can starts here.
    Replay(StartAt),
}
