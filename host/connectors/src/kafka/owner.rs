//! Who owns a partition under exactly-once, as the committed offsets'
//! metadata records it, and fencing an owner that did not hand its
//! partitions over. Used by the source ([`super::source`]); the fencing
//! producer itself is the sink's ([`super::sink::fence`]).

use super::REQUEST_TIMEOUT;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use std::collections::BTreeMap;
use std::time::Instant;

/// This process as the owner of its partitions under exactly-once. Each
/// offset it commits carries, as the offset's metadata, its producer's
/// transactional id, or "released" when it commits a partition it is
/// giving up in a rebalance. A process given a partition whose committed
/// offset names another owner knows that owner did not hand it over (it
/// was killed, or its session timed out) and fences that owner's producer
/// before it reads the partition: the old owner's open transaction is
/// aborted at once, so `read_committed` readers of the output stop waiting
/// for it, and a zombie can commit nothing more.
pub struct Owner {
    /// This process's producer's transactional id.
    pub id: String,
    /// This process's consumer's `group.instance.id`: a previous owner
    /// that is a member of the group again (restarted) is not fenced.
    pub member: String,
    /// Fences the producer of another transactional id.
    pub fence: Fence,
}

/// What fences the producer of a transactional id.
pub type Fence = Box<dyn Fn(&str) -> KafkaResult<()> + Send + Sync>;

/// The metadata of an offset committed by a process handing the partition over.
const RELEASED: &str = "weir:released";
/// The prefix of the metadata of an offset committed by its owner; its
/// transactional id, " member=" and its `group.instance.id` follow.
const OWNED_BY: &str = "weir:owner=";
const MEMBER: &str = " member=";

impl Owner {
    /// The metadata of an offset this process commits: released when it
    /// is handing the partition over, else itself as the owner.
    pub(super) fn metadata(&self, releasing: bool) -> String {
        match releasing {
            true => RELEASED.to_string(),
            false => format!("{OWNED_BY}{}{MEMBER}{}", self.id, self.member),
        }
    }

    /// Fences the producers of the owners that committed `partitions` of
    /// `topic` last and did not hand them over, unless they are members of
    /// `group` again. If the group cannot be asked (an offset commit of the
    /// old owner still pending in its open transaction), nothing is fenced:
    /// the old transaction then ends when it times out.
    pub(super) fn fence_previous<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) {
        if partitions.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(topic, *p);
        }
        let got = match consumer.committed_offsets(tpl, REQUEST_TIMEOUT) {
            Ok(got) => got,
            Err(e) => {
                tracing::warn!(topic = %topic, "cannot read who committed the partitions last ({e}): fencing no one");
                return;
            }
        };
        let mut previous: BTreeMap<(String, String), Vec<i32>> = BTreeMap::new();
        for e in got.elements() {
            // Metadata another client wrote may not be text: not ours, then.
            let metadata = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.metadata().to_string()));
            if let Ok(metadata) = metadata
                && let Some((id, member)) = metadata.strip_prefix(OWNED_BY).and_then(|m| m.split_once(MEMBER))
                && id != self.id
                && e.error().is_ok()
            {
                previous.entry((id.to_string(), member.to_string())).or_default().push(e.partition());
            }
        }
        if previous.is_empty() {
            return;
        }
        // A previous owner that is in the group again was restarted, not
        // lost: its new producer must not be fenced. (Static members' ids
        // begin with their group.instance.id.)
        let members: Vec<String> = match consumer.fetch_group_list(Some(group), REQUEST_TIMEOUT) {
            Ok(list) => list.groups().iter().flat_map(|g| g.members().iter().map(|m| m.id().to_string())).collect(),
            Err(e) => {
                tracing::warn!(topic = %topic, "cannot list the group's members ({e}): fencing no one");
                return;
            }
        };
        for ((id, member), partitions) in previous {
            if members.iter().any(|m| m.starts_with(&format!("{member}-"))) {
                tracing::info!(topic = %topic, previous_owner = %id, ?partitions, "the previous owner is in the group again: not fenced");
                continue;
            }
            let started = Instant::now();
            match (self.fence)(&id) {
                Ok(()) => tracing::info!(
                    topic = %topic,
                    previous_owner = %id,
                    ?partitions,
                    ms = started.elapsed().as_millis() as u64,
                    "fenced the previous owner of these partitions (it did not hand them over): its open transaction is aborted"
                ),
                Err(e) => tracing::warn!(topic = %topic, previous_owner = %id, ?partitions,
                    "cannot fence the previous owner ({e}): its open transaction ends when it times out"),
            }
        }
    }
}
