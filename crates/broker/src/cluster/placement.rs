//! Where replicas go. Pure functions of their arguments: `assign` runs inside
//! [`ClusterState::apply`](super::state::ClusterState::apply), so its answer must be the same on
//! every node (no randomness, no `HashMap` order, no std hasher, which is seeded per process).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::state::{ApplyError, NodeId, PartitionAssignment};

/// Chooses replicas for the new partitions `first..first + count` of `topic`; element `i` of the
/// result is partition `first + i`, its first node the preferred leader.
///
/// Kafka-style, with the current load taken into account:
/// - every replica set is `replication_factor` least-loaded nodes (`load` plus what this call
///   already placed), so starting from equal loads the replica counts never differ by more than
///   one, and a node that joined empty catches up;
/// - the preferred leader is, among the nodes such a set may contain, the one leading the fewest
///   of the new partitions, and among equally loaded followers those leading more go first, so
///   leaders stay within one of each other too (the tests check every shape up to 7 nodes; the
///   leadership of earlier topics is not known here, only spread by the hashed start below);
/// - ties go round the ring of node ids, starting at a position derived from an FNV-1a hash of the
///   topic name and advancing with the partition index (so different topics start their leaders
///   on different nodes, and `first` continues the rotation when partitions are added), the
///   followers' starting point shifting by one each full round so replica sets differ.
///
/// `nodes` are the candidate (live) node ids; duplicates and 0 are ignored. Fails if
/// `replication_factor` is 0 or larger than the number of nodes.
pub fn assign(
    topic: &str,
    first: u32,
    count: u32,
    replication_factor: u32,
    nodes: &[NodeId],
    load: &BTreeMap<NodeId, usize>,
) -> Result<Vec<Vec<NodeId>>, ApplyError> {
    let mut ring: Vec<NodeId> = nodes.iter().copied().filter(|&n| n != 0).collect();
    ring.sort_unstable();
    ring.dedup();
    let n = ring.len();
    let rf = replication_factor as usize;
    if rf == 0 || rf > n {
        return Err(ApplyError::InvalidReplicationFactor {
            requested: replication_factor,
            available: u32::try_from(n).unwrap_or(u32::MAX),
        });
    }
    let n64 = n as u64;
    let start = fnv1a(topic) % n64;
    // Distance from `from` going round the ring: the tie-breaker that rotates placements.
    let rank = |from: usize, k: usize| (k + n - from) % n;
    let mut replicas: Vec<usize> = ring
        .iter()
        .map(|id| load.get(id).copied().unwrap_or(0))
        .collect();
    let mut leads = vec![0usize; n];
    let mut out = Vec::with_capacity(count as usize);
    for i in u64::from(first)..u64::from(first) + u64::from(count) {
        let lead_from = ((start + i) % n64) as usize;
        // A leader loaded above the rf-th smallest load would make this replica set heavier than
        // necessary, and the replica counts would drift apart.
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        let bound = sorted[rf - 1];
        let leader = (0..n)
            .filter(|&k| replicas[k] <= bound)
            .min_by_key(|&k| (leads[k], replicas[k], rank(lead_from, k)))
            // Never taken: at least `rf` nodes are at or below the bound.
            .unwrap_or(lead_from);
        let round = (i / n64) as usize;
        let shift = if n > 1 { round % (n - 1) } else { 0 };
        let follow_from = (leader + 1 + shift) % n;
        let mut followers: Vec<usize> = (0..n).filter(|&k| k != leader).collect();
        // Among equally loaded followers, those leading more go first: nodes leading less keep
        // their replica count low and so stay eligible to lead the next partitions.
        followers.sort_by_key(|&k| (replicas[k], Reverse(leads[k]), rank(follow_from, k)));
        followers.truncate(rf - 1);

        leads[leader] += 1;
        replicas[leader] += 1;
        for &k in &followers {
            replicas[k] += 1;
        }
        let mut set = Vec::with_capacity(rf);
        set.push(ring[leader]);
        set.extend(followers.iter().map(|&k| ring[k]));
        out.push(set);
    }
    Ok(out)
}

/// For self-healing: `replicas` with `dead` dropped and the least-loaded node of `live` that is
/// not already in the set (ties by node id) appended. The newcomer goes last rather than into the
/// dead node's slot so that the preferred leader is a survivor, which already has the data; the
/// survivors keep their order.
///
/// `None` when there is nothing to propose: `dead` is not among `replicas`, or no live node is
/// left outside the set.
pub fn replace(
    replicas: &[NodeId],
    dead: NodeId,
    live: &[NodeId],
    load: &BTreeMap<NodeId, usize>,
) -> Option<Vec<NodeId>> {
    if !replicas.contains(&dead) {
        return None;
    }
    let newcomer = live
        .iter()
        .copied()
        .filter(|&n| n != 0 && n != dead && !replicas.contains(&n))
        .min_by_key(|n| (load.get(n).copied().unwrap_or(0), *n))?;
    let mut out: Vec<NodeId> = replicas.iter().copied().filter(|&n| n != dead).collect();
    out.push(newcomer);
    Some(out)
}

/// Preferred-leader rebalance: the partition's preferred leader (its first replica) if that node
/// is live and in the ISR, i.e. could take over without losing committed data.
pub fn preferred_leader(p: &PartitionAssignment, live: &[NodeId]) -> Option<NodeId> {
    let first = *p.replicas.first()?;
    (live.contains(&first) && p.isr.contains(&first)).then_some(first)
}

/// FNV-1a (64-bit): the same on every node and every build, unlike std's seeded hasher.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64) -> Vec<NodeId> {
        (1..=n).collect()
    }

    /// (leaderships, replicas) per node.
    fn counts(sets: &[Vec<NodeId>], nodes: &[NodeId]) -> (Vec<usize>, Vec<usize>) {
        let leads = nodes
            .iter()
            .map(|n| sets.iter().filter(|s| s[0] == *n).count())
            .collect();
        let reps = nodes
            .iter()
            .map(|n| sets.iter().filter(|s| s.contains(n)).count())
            .collect();
        (leads, reps)
    }

    fn spread(v: &[usize]) -> usize {
        v.iter().max().unwrap() - v.iter().min().unwrap()
    }

    fn assert_well_formed(sets: &[Vec<NodeId>], rf: usize, nodes: &[NodeId]) {
        for s in sets {
            assert_eq!(s.len(), rf);
            let mut d = s.clone();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), rf, "duplicate replica in {s:?}");
            assert!(
                s.iter().all(|n| nodes.contains(n)),
                "{s:?} outside {nodes:?}"
            );
        }
    }

    #[test]
    fn three_nodes_six_partitions_rf3() {
        let nodes = ids(3);
        let sets = assign("orders", 0, 6, 3, &nodes, &BTreeMap::new()).unwrap();
        assert_well_formed(&sets, 3, &nodes);
        let (leads, reps) = counts(&sets, &nodes);
        assert_eq!(leads, vec![2, 2, 2]);
        assert_eq!(reps, vec![6, 6, 6]);
    }

    #[test]
    fn five_nodes_twelve_partitions_rf3() {
        let nodes = ids(5);
        let sets = assign("orders", 0, 12, 3, &nodes, &BTreeMap::new()).unwrap();
        assert_well_formed(&sets, 3, &nodes);
        let (leads, reps) = counts(&sets, &nodes);
        assert!(spread(&leads) <= 1, "leaders {leads:?}");
        assert!(spread(&reps) <= 1, "replicas {reps:?}");
        assert_eq!(reps.iter().sum::<usize>(), 36);
        let mut distinct = sets
            .iter()
            .map(|s| {
                let mut s = s.clone();
                s.sort_unstable();
                s
            })
            .collect::<Vec<_>>();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() >= 5, "replica sets barely differ: {sets:?}");
    }

    #[test]
    fn balanced_from_equal_load_for_every_small_shape() {
        for n in 1..=7u64 {
            let nodes = ids(n);
            for rf in 1..=n as u32 {
                for count in 1..=3 * n as u32 + 2 {
                    for topic in ["a", "events", "t-17"] {
                        let sets = assign(topic, 0, count, rf, &nodes, &BTreeMap::new()).unwrap();
                        assert_eq!(sets.len(), count as usize);
                        assert_well_formed(&sets, rf as usize, &nodes);
                        let (leads, reps) = counts(&sets, &nodes);
                        let shape = format!("n={n} rf={rf} count={count} topic={topic}");
                        assert!(spread(&leads) <= 1, "{shape}: leaders {leads:?}");
                        assert!(spread(&reps) <= 1, "{shape}: replicas {reps:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn rf_must_fit_the_nodes() {
        let err = assign("t", 0, 1, 4, &ids(3), &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err,
            ApplyError::InvalidReplicationFactor {
                requested: 4,
                available: 3
            }
        );
        assert!(assign("t", 0, 1, 0, &ids(3), &BTreeMap::new()).is_err());
        assert!(assign("t", 0, 1, 1, &[], &BTreeMap::new()).is_err());
        // Duplicates do not count as extra nodes.
        assert!(assign("t", 0, 1, 2, &[7, 7], &BTreeMap::new()).is_err());
    }

    #[test]
    fn deterministic_and_independent_of_input_order() {
        let load = BTreeMap::from([(2, 5), (4, 1)]);
        let a = assign("x", 3, 20, 2, &[4, 1, 3, 2], &load).unwrap();
        let b = assign("x", 3, 20, 2, &[1, 2, 3, 4, 2], &load).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn topic_name_moves_the_first_leader() {
        let nodes = ids(5);
        let firsts: std::collections::BTreeSet<NodeId> = (0..20)
            .map(|i| {
                assign(&format!("topic-{i}"), 0, 1, 3, &nodes, &BTreeMap::new()).unwrap()[0][0]
            })
            .collect();
        assert!(firsts.len() >= 3, "first leaders {firsts:?}");
    }

    #[test]
    fn least_loaded_nodes_fill_first() {
        // Node 4 joined empty; the others hold 10 replicas each.
        let nodes = ids(4);
        let load = BTreeMap::from([(1, 10), (2, 10), (3, 10)]);
        let sets = assign("t", 0, 6, 2, &nodes, &load).unwrap();
        assert!(sets.iter().all(|s| s.contains(&4)), "{sets:?}");
        // ... yet it does not lead them all.
        let (leads, _) = counts(&sets, &nodes);
        assert!(leads[3] < 6, "{leads:?}");
        // Nodes missing from `load` count as empty; entries for other nodes are ignored.
        let load = BTreeMap::from([(1, 3), (2, 3), (9, 0)]);
        let sets = assign("t", 0, 1, 1, &[1, 2, 3], &load).unwrap();
        assert_eq!(sets, vec![vec![3]]);
    }

    #[test]
    fn added_partitions_continue_the_balance() {
        let nodes = ids(3);
        let mut load = BTreeMap::new();
        let mut all = assign("t", 0, 4, 2, &nodes, &load).unwrap();
        for s in &all {
            for n in s {
                *load.entry(*n).or_insert(0) += 1;
            }
        }
        all.extend(assign("t", 4, 5, 2, &nodes, &load).unwrap());
        let (_, reps) = counts(&all, &nodes);
        assert_eq!(reps, vec![6, 6, 6]);
    }

    #[test]
    fn replace_takes_least_loaded_outsider() {
        let load = BTreeMap::from([(1, 0), (2, 0), (3, 0), (4, 9), (5, 2), (6, 2)]);
        let live = [1, 2, 4, 5, 6];
        // 1 and 2 are the least loaded but already in the set; 5 and 6 tie, 5 wins by id.
        assert_eq!(replace(&[3, 1, 2], 3, &live, &load), Some(vec![1, 2, 5]));
        assert_eq!(replace(&[1, 3, 2], 3, &live, &load), Some(vec![1, 2, 5]));
        // Nodes missing from `load` count as empty.
        assert_eq!(
            replace(&[1, 2], 2, &[1, 2, 8, 9], &BTreeMap::from([(8, 1)])),
            Some(vec![1, 9])
        );
    }

    #[test]
    fn replace_never_duplicates_or_reuses_the_dead() {
        let load = BTreeMap::new();
        // Every live node already holds a replica.
        assert_eq!(replace(&[1, 2, 3], 2, &[1, 2, 3], &load), None);
        // The dead node is no candidate even when listed as live.
        assert_eq!(replace(&[1, 2], 2, &[1, 2], &load), None);
        // Not a replica: nothing to replace.
        assert_eq!(replace(&[1, 2], 7, &[1, 2, 3], &load), None);
        for dead in 1..=3 {
            let out = replace(&[1, 2, 3], dead, &[1, 2, 3, 4, 5], &load).unwrap();
            assert!(!out.contains(&dead));
            let mut d = out.clone();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), 3, "{out:?}");
        }
    }

    #[test]
    fn preferred_leader_needs_live_and_in_sync() {
        let mut p = PartitionAssignment {
            group: 1,
            replicas: vec![2, 1, 3],
            leader: Some(1),
            leader_epoch: 4,
            isr: vec![1, 2, 3],
            target_replicas: None,
            log_start: 0,
            remote: Default::default(),
        };
        assert_eq!(preferred_leader(&p, &[1, 2, 3]), Some(2));
        assert_eq!(preferred_leader(&p, &[1, 3]), None);
        p.isr = vec![1, 3];
        assert_eq!(preferred_leader(&p, &[1, 2, 3]), None);
        p.replicas.clear();
        assert_eq!(preferred_leader(&p, &[1, 2, 3]), None);
    }
}
