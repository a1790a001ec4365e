//! Linearizability checker for a single-key register: the Wing & Gong / Lowe
//! ("WGL") depth-first search with memoization, as used by Porcupine and Knossos.
//!
//! Tests record a per-key history of concurrent client calls against the KV
//! store; `check` decides whether some total order of those calls, consistent
//! with real time, explains every observed result.
//!
//! Ops with unknown outcomes (timeouts) return at +infinity and may never take
//! effect, which in plain WGL multiplies the search by 2^k. So the search only
//! looks for minimal explanations (an unknown op must change the value and be
//! depended on before it is overwritten), places identical unknown ops in call
//! order, merges values nobody observes, and lets a failed state prune every
//! state that differs only by more unknown ops placed. The brute-force test
//! below checks all of that against an exhaustive oracle.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// `None` means the key is absent, so reads and CAS can observe deletions.
pub type Value = Option<String>;

#[derive(Clone, Debug)]
pub enum Op {
    Put(String),
    Delete,
    Get,
    /// `expect: None` means "only if absent", as an etcd `version == 0` compare does.
    Cas {
        expect: Value,
        new: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Put,
    Delete,
    Get(Value),
    Cas(bool),
    /// Timed out / connection error: the op may have taken effect at any point
    /// after its call, or never, so the checker must allow both.
    Unknown,
}

#[derive(Clone, Debug)]
pub struct Call {
    pub client: usize,
    pub op: Op,
    /// Monotonic nanoseconds; only the order relative to other calls matters.
    pub call: u64,
    /// `u64::MAX` when `Outcome::Unknown`: the op never observably returned.
    pub ret: u64,
    pub outcome: Outcome,
}

/// Keeps a pathological history from hanging the test suite.
const STEP_BUDGET: u64 = 50_000_000;
/// How many ops the failure report lists, so huge histories stay readable.
const REPORT_LIMIT: usize = 20;
const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// Returns `Ok(())` iff the history is linearizable with respect to a register
/// that starts absent.
pub fn check(history: &[Call]) -> Result<(), String> {
    check_with_budget(history, STEP_BUDGET)
}

/// An op reduced to its effect on interned values (0 = absent), so that a
/// search step compares integers and the memo key is one flat `[u64]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Effect {
    Write(u64),
    Read(u64),
    Swap { expect: u64, new: u64 },
    Refuse { expect: u64 },
}

impl Effect {
    fn apply(self, state: u64) -> Option<u64> {
        match self {
            Effect::Write(v) => Some(v),
            Effect::Read(v) => (v == state).then_some(state),
            Effect::Swap { expect, new } => (expect == state).then_some(new),
            Effect::Refuse { expect } => (expect != state).then_some(state),
        }
    }
}

/// Where the search stands: the register value, and `owed` = 1 + the value
/// before an unknown write that no later op has depended on yet (0: none).
#[derive(Clone, Copy)]
struct Search {
    value: u64,
    owed: u64,
}

impl Search {
    /// Unknown ops are only placed where they matter: a minimal explanation
    /// never needs an unknown op that changes nothing, nor one overwritten
    /// before anything read it, so pruning those keeps k unknowns from
    /// multiplying the search space by 2^k.
    fn advance(self, effect: Effect, known: bool) -> Option<Search> {
        let value = effect.apply(self.value)?;
        if !known && value == self.value {
            return None;
        }
        let owed = match effect {
            Effect::Write(_) if self.owed != 0 => return None,
            // A failed CAS only depends on the unknown write if it expected the old value.
            Effect::Refuse { expect } if self.owed != expect + 1 => self.owed,
            _ => 0,
        };
        Some(Search {
            value,
            owed: if known { owed } else { self.value + 1 },
        })
    }
}

fn check_with_budget(history: &[Call], budget: u64) -> Result<(), String> {
    for (i, c) in history.iter().enumerate() {
        if !outcome_fits(&c.op, &c.outcome) || (c.outcome != Outcome::Unknown && c.ret < c.call) {
            return Err(format!("malformed history entry {}", describe(i, c)));
        }
    }
    // Values that no op reads or compares against behave identically in every
    // future, so they share one id: that collapses the 2^k subsets of k unknown
    // writes nobody saw (common with unique values) into a single twin class.
    let observed: HashSet<&Value> = history
        .iter()
        .filter_map(|c| match (&c.op, &c.outcome) {
            (_, Outcome::Get(v)) | (Op::Cas { expect: v, .. }, _) => Some(v),
            _ => None,
        })
        .collect();
    let mut names = vec!["None".to_string(), "<a value no op observes>".to_string()];
    let mut ids: HashMap<Value, u64> = HashMap::from([(None, 0)]);
    let mut id = |v: Value| match ids.get(&v) {
        Some(&id) => id,
        None if !observed.contains(&v) => 1,
        None => {
            names.push(format!("{v:?}"));
            ids.insert(v, names.len() as u64 - 1);
            names.len() as u64 - 1
        }
    };
    let mut ops: Vec<(usize, &Call, Effect)> = history
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let effect = match (&c.op, &c.outcome) {
                (Op::Get, Outcome::Get(v)) => Effect::Read(id(v.clone())),
                // An unknown read observed nothing and changed nothing.
                (Op::Get, _) => return None,
                (Op::Put(v), _) => Effect::Write(id(Some(v.clone()))),
                (Op::Delete, _) => Effect::Write(0),
                (Op::Cas { expect, .. }, Outcome::Cas(false)) => Effect::Refuse {
                    expect: id(expect.clone()),
                },
                // An unknown CAS that failed is the same as one that never happened.
                (Op::Cas { expect, new }, _) => Effect::Swap {
                    expect: id(expect.clone()),
                    new: id(Some(new.clone())),
                },
            };
            Some((i, c, effect))
        })
        .collect();
    // Known ops first, so the memo key can split into a known and an unknown bitset.
    ops.sort_by_key(|(_, c, _)| c.outcome == Outcome::Unknown);
    let n = ops.len();
    let n_known = ops.partition_point(|(_, c, _)| c.outcome != Outcome::Unknown);
    let known = |i: usize| i < n_known;

    // Sort key: unknown returns last of all (return at +infinity), then time;
    // at equal times calls precede returns, since coarse clocks can't order them.
    let mut events: Vec<(bool, u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, (_, c, _)) in ops.iter().enumerate() {
        events.push((false, c.call, false, i));
        events.push((!known(i), if known(i) { c.ret } else { u64::MAX }, true, i));
    }
    events.sort_unstable();

    // Node 0 is the list head; node k + 1 is events[k].
    let len = events.len();
    let mut list = List {
        next: (0..=len)
            .map(|k| if k < len { k + 1 } else { NIL })
            .collect(),
        prev: (0..=len).map(|k| k.checked_sub(1).unwrap_or(NIL)).collect(),
        partner: vec![NIL; len + 1],
    };
    let mut op_of = vec![NIL; len + 1];
    let mut call_node = vec![NIL; n];
    for (k, &(_, _, is_ret, op)) in events.iter().enumerate() {
        op_of[k + 1] = op;
        if is_ret {
            list.partner[call_node[op]] = k + 1;
        } else {
            call_node[op] = k + 1;
        }
    }

    // Identical unknown ops are interchangeable, so only the earliest-called
    // unplaced one is a candidate; otherwise k of them would add 2^k states.
    let mut twin = vec![NIL; n];
    let mut latest: HashMap<Effect, usize> = HashMap::new();
    for &(_, _, _, op) in events.iter().filter(|e| !e.2 && !known(e.3)) {
        twin[op] = latest.insert(ops[op].2, op).unwrap_or(NIL);
    }

    // Memo key: [known-op bitset, value, owed, unknown-op bitset]. A state whose
    // subtree failed fails again from anywhere with the same prefix and a superset
    // of placed unknown ops (it only has fewer options), which is what keeps WGL
    // with unknown ops tractable; with none, this is the usual exact memo.
    let prefix = n_known.div_ceil(64) + 2;
    let mut key = vec![0u64; prefix + (n - n_known).div_ceil(64)];
    let bit = |op: usize| match op.checked_sub(n_known) {
        None => (op / 64, 1u64 << (op % 64)),
        Some(u) => (prefix + u / 64, 1u64 << (u % 64)),
    };
    let mut failed: HashMap<Vec<u64>, Vec<Vec<u64>>> = HashMap::new();
    let dominated = |failed: &HashMap<Vec<u64>, Vec<Vec<u64>>>, key: &[u64]| {
        failed.get(&key[..prefix]).is_some_and(|done| {
            done.iter()
                .any(|u| u.iter().zip(&key[prefix..]).all(|(a, b)| a & !b == 0))
        })
    };
    let mut state = Search { value: 0, owed: 0 };
    let mut stack: Vec<(usize, Search)> = Vec::new();
    // The deepest point by known ops placed, for the failure report.
    let (mut best, mut known_depth) = ((Vec::new(), 0, 0), 0);
    // Each state tries known ops before unknown ones, so states with fewer
    // unknowns placed fail first and then prune their supersets.
    let mut unknown_pass = false;
    let mut cursor = list.next[HEAD];
    for _ in 0..budget {
        if cursor == NIL {
            return Ok(()); // list empty: every op placed
        }
        let op = op_of[cursor];
        if list.partner[cursor] != NIL && known(op) == unknown_pass {
            cursor = list.next[cursor];
        } else if list.partner[cursor] != NIL {
            let held_back = twin[op] != NIL && key[bit(twin[op]).0] & bit(twin[op]).1 == 0;
            if let Some(next) = state.advance(ops[op].2, known(op)).filter(|_| !held_back) {
                let (word, mask) = bit(op);
                key[word] ^= mask;
                (key[prefix - 2], key[prefix - 1]) = (next.value, next.owed);
                if !dominated(&failed, &key) {
                    stack.push((cursor, std::mem::replace(&mut state, next)));
                    list.lift(cursor);
                    unknown_pass = false;
                    known_depth += usize::from(known(op));
                    if known_depth > best.2 {
                        let placed = stack.iter().map(|&(node, _)| op_of[node]).collect();
                        best = (placed, state.value, known_depth);
                    }
                    cursor = list.next[HEAD];
                    continue;
                }
                key[word] ^= mask;
            }
            cursor = list.next[cursor];
        } else if !known(op) {
            // Unknown returns sort last, so every known op has been placed;
            // the remaining unknown ops are taken to have never happened.
            return Ok(());
        } else if !unknown_pass && n_known < n {
            unknown_pass = true;
            cursor = list.next[HEAD];
        } else {
            // This return is a deadline no candidate could meet: undo the last choice.
            let Some((node, prev)) = stack.pop() else {
                return Err(report(&ops, n_known, &best.0, &names[best.1 as usize]));
            };
            (key[prefix - 2], key[prefix - 1]) = (state.value, state.owed);
            failed
                .entry(key[..prefix].to_vec())
                .or_default()
                .push(key[prefix..].to_vec());
            state = prev;
            let (word, mask) = bit(op_of[node]);
            key[word] ^= mask;
            list.unlift(node);
            unknown_pass = !known(op_of[node]);
            known_depth -= usize::from(known(op_of[node]));
            cursor = list.next[node];
        }
    }
    Err(format!("checker gave up after {budget} steps ({n} ops)"))
}

/// Doubly linked list of call/return events; lifting a linearized op and
/// restoring it on backtrack are O(1), which keeps the search loop cheap.
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Return node for a call node, `NIL` for return nodes and the head.
    partner: Vec<usize>,
}

impl List {
    fn lift(&mut self, call: usize) {
        let ret = self.partner[call];
        // A call's return always follows it, so `next[call]` is never NIL.
        self.next[self.prev[call]] = self.next[call];
        self.prev[self.next[call]] = self.prev[call];
        self.next[self.prev[ret]] = self.next[ret];
        if self.next[ret] != NIL {
            self.prev[self.next[ret]] = self.prev[ret];
        }
    }

    /// Must mirror `lift` in reverse (LIFO), relying on the removed nodes' stale links.
    fn unlift(&mut self, call: usize) {
        let ret = self.partner[call];
        self.next[self.prev[ret]] = ret;
        if self.next[ret] != NIL {
            self.prev[self.next[ret]] = ret;
        }
        self.next[self.prev[call]] = call;
        self.prev[self.next[call]] = call;
    }
}

fn outcome_fits(op: &Op, outcome: &Outcome) -> bool {
    matches!(
        (op, outcome),
        (_, Outcome::Unknown)
            | (Op::Put(_), Outcome::Put)
            | (Op::Delete, Outcome::Delete)
            | (Op::Get, Outcome::Get(_))
            | (Op::Cas { .. }, Outcome::Cas(_))
    )
}

fn describe(index: usize, c: &Call) -> String {
    let (client, call) = (c.client, c.call);
    let ret = Some(c.ret).filter(|_| c.outcome != Outcome::Unknown);
    let ret = ret.map_or("never".to_string(), |r| r.to_string());
    format!(
        "#{index} client {client}: {:?} -> {:?} [call {call}, ret {ret}]",
        c.op, c.outcome
    )
}

/// Explains the deepest point the search reached: what was placed last and
/// which ops were competing for the next slot when every choice failed.
fn report(ops: &[(usize, &Call, Effect)], n_known: usize, placed: &[usize], state: &str) -> String {
    let line = |i: usize| format!("  {}\n", describe(ops[i].0, ops[i].1));
    let mut done = vec![false; ops.len()];
    placed.iter().for_each(|&i| done[i] = true);
    let left: Vec<usize> = (0..n_known).filter(|&i| !done[i]).collect();
    let deadline = left.iter().map(|&i| ops[i].1.ret).min().unwrap_or(u64::MAX);
    let mut msg = format!(
        "history is not linearizable: the longest linearizable prefix places {} of the {n_known} \
         ops with known outcomes; register after it: {state}\nlast ops of that prefix:\n",
        n_known - left.len()
    );
    msg.extend(
        placed[placed.len().saturating_sub(5)..]
            .iter()
            .map(|&i| line(i)),
    );
    let stuck: Vec<usize> = left
        .into_iter()
        .filter(|&i| ops[i].1.call <= deadline)
        .collect();
    let _ = writeln!(
        msg,
        "ops that could not be placed next (first pending return at {deadline}):"
    );
    msg.extend(stuck.iter().take(REPORT_LIMIT).map(|&i| line(i)));
    if stuck.len() > REPORT_LIMIT {
        let _ = writeln!(msg, "  ... and {} more", stuck.len() - REPORT_LIMIT);
    }
    let unknown = (n_known..ops.len()).filter(|&i| !done[i]).count();
    if unknown > 0 {
        let _ = writeln!(
            msg,
            "  ({unknown} ops with unknown outcomes were left unplaced)"
        );
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn call(client: usize, op: Op, call: u64, ret: u64, outcome: Outcome) -> Call {
        Call {
            client,
            op,
            call,
            ret,
            outcome,
        }
    }
    fn put(v: &str, t: (u64, u64)) -> Call {
        call(0, Op::Put(v.into()), t.0, t.1, Outcome::Put)
    }
    fn get(v: Option<&str>, t: (u64, u64)) -> Call {
        call(1, Op::Get, t.0, t.1, Outcome::Get(v.map(Into::into)))
    }
    fn cas(expect: Option<&str>, new: &str, t: (u64, u64), ok: bool) -> Call {
        let op = Op::Cas {
            expect: expect.map(Into::into),
            new: new.into(),
        };
        call(2, op, t.0, t.1, Outcome::Cas(ok))
    }
    fn unknown(op: Op, at: u64) -> Call {
        call(3, op, at, u64::MAX, Outcome::Unknown)
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            get(None, (0, 1)),
            put("a", (2, 3)),
            get(Some("a"), (4, 5)),
            cas(Some("a"), "b", (6, 7), true),
            get(Some("b"), (8, 9)),
            call(0, Op::Delete, 10, 11, Outcome::Delete),
            get(None, (12, 13)),
            cas(None, "c", (14, 15), true),
            get(Some("c"), (16, 17)),
        ];
        assert_eq!(check(&h), Ok(()));
        assert_eq!(check(&[]), Ok(()));
    }

    #[test]
    fn stale_read_after_completed_put_fails() {
        let h = [put("a", (0, 1)), put("b", (2, 3)), get(Some("a"), (4, 5))];
        let err = check(&h).unwrap_err();
        assert!(
            err.contains("could not be placed") && err.contains("#2 client 1"),
            "{err}"
        );
    }

    #[test]
    fn concurrent_put_and_get_allow_either_order() {
        assert_eq!(check(&[put("a", (0, 10)), get(None, (1, 5))]), Ok(()));
        assert_eq!(check(&[put("a", (0, 10)), get(Some("a"), (1, 5))]), Ok(()));
        // Touching intervals count as concurrent.
        assert_eq!(check(&[put("a", (0, 5)), get(None, (5, 6))]), Ok(()));
    }

    #[test]
    fn cas_success_and_failure() {
        let h = [
            put("a", (0, 1)),
            cas(Some("a"), "b", (2, 3), true),
            cas(Some("a"), "c", (4, 5), false),
            get(Some("b"), (6, 7)),
        ];
        assert_eq!(check(&h), Ok(()));
        // Concurrent with the put, the "create if absent" CAS may go first.
        assert_eq!(
            check(&[put("a", (0, 10)), cas(None, "b", (1, 5), true)]),
            Ok(())
        );
        assert!(check(&[put("a", (0, 1)), cas(Some("a"), "b", (2, 3), false)]).is_err());
        assert!(check(&[put("a", (0, 1)), cas(None, "b", (2, 3), true)]).is_err());
        assert!(check(&[cas(Some("a"), "b", (0, 1), true)]).is_err());
    }

    #[test]
    fn unknown_put_that_must_have_happened() {
        let mut h = vec![
            put("a", (0, 1)),
            unknown(Op::Put("b".into()), 2),
            get(Some("b"), (5, 6)),
        ];
        assert_eq!(check(&h), Ok(()));
        // Once observed, it cannot be un-happened.
        h.push(get(Some("a"), (7, 8)));
        assert!(check(&h).is_err());
        // Only an unknown write explains a failed CAS that expected the last value.
        let h = [
            put("a", (0, 1)),
            unknown(Op::Delete, 2),
            cas(Some("a"), "c", (3, 4), false),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn unknown_ops_never_seen() {
        let h = [
            put("a", (0, 1)),
            unknown(Op::Put("b".into()), 2),
            unknown(Op::Delete, 2),
            unknown(Op::Get, 3),
            get(Some("a"), (5, 6)),
            get(Some("a"), (7, 8)),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn read_of_value_never_written_fails() {
        assert!(check(&[put("a", (0, 1)), get(Some("x"), (0, 3))]).is_err());
        assert!(check(&[get(Some("x"), (0, 1))]).is_err());
    }

    #[test]
    fn malformed_history_and_budget() {
        let err = check(&[call(0, Op::Get, 0, 1, Outcome::Put)]).unwrap_err();
        assert!(err.contains("malformed"), "{err}");
        let err = check_with_budget(&random_history(7, 200, u64::MAX, 0), 10).unwrap_err();
        assert!(err.contains("gave up after 10 steps"), "{err}");
    }

    struct XorShift(u64);
    impl XorShift {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// The real register, independent of the checker's model.
    fn run(reg: &mut Value, op: &Op) -> Outcome {
        let (next, outcome) = match op {
            Op::Get => (reg.clone(), Outcome::Get(reg.clone())),
            Op::Put(v) => (Some(v.clone()), Outcome::Put),
            Op::Delete => (None, Outcome::Delete),
            Op::Cas { expect, new } if expect == reg => (Some(new.clone()), Outcome::Cas(true)),
            Op::Cas { .. } => (reg.clone(), Outcome::Cas(false)),
        };
        *reg = next;
        outcome
    }

    /// `n_ops` random ops from 5 concurrent clients, each applied to a real
    /// register at an instant between its call and return. Values are
    /// `v{k % pool}`; `unknown_one_in` (0 = never) makes writes time out, either
    /// before or after taking effect.
    fn random_history(seed: u64, n_ops: usize, pool: u64, unknown_one_in: u64) -> Vec<Call> {
        let (mut rng, mut reg, mut t, mut started) = (XorShift(seed), None, 0, 0);
        let mut inflight: Vec<Option<(Call, bool)>> = vec![None; 5];
        let mut history = Vec::new();
        let times_out = |rng: &mut XorShift, c: &Call| {
            !matches!(c.op, Op::Get) && unknown_one_in > 0 && rng.below(unknown_one_in) == 0
        };
        while started < n_ops || inflight.iter().any(Option::is_some) {
            t += 1 + rng.below(10);
            let client = rng.below(5) as usize;
            match inflight[client].take() {
                None if started < n_ops => {
                    started += 1;
                    let fresh = format!("v{}", started as u64 % pool);
                    let op = match rng.below(10) {
                        0..=3 => Op::Get,
                        4 | 5 => Op::Put(fresh),
                        6 => Op::Delete,
                        7 | 8 => Op::Cas {
                            expect: reg.clone(),
                            new: fresh,
                        },
                        _ => {
                            let expect = Some(format!("v{}", rng.below(started as u64) % pool));
                            Op::Cas { expect, new: fresh }
                        }
                    };
                    inflight[client] = Some((call(client, op, t, 0, Outcome::Unknown), false));
                }
                None => {}
                Some((c, false)) if times_out(&mut rng, &c) => history.push(c), // lost
                Some((mut c, false)) => {
                    c.outcome = run(&mut reg, &c.op);
                    inflight[client] = Some((c, true));
                }
                Some((mut c, true)) => {
                    if times_out(&mut rng, &c) {
                        (c.outcome, c.ret) = (Outcome::Unknown, u64::MAX); // reply lost
                    } else {
                        c.ret = t;
                    }
                    history.push(c);
                }
            }
        }
        history
    }

    #[test]
    fn random_real_histories_pass_quickly() {
        for (seed, pool, unknown_one_in) in
            [(1, u64::MAX, 0), (2, 3, 0), (3, u64::MAX, 50), (4, 4, 300)]
        {
            let h = random_history(seed, 2_000, pool, unknown_one_in);
            assert_eq!(h.len(), 2_000);
            let start = Instant::now();
            assert_eq!(check(&h), Ok(()), "seed {seed}");
            println!("seed {seed}: 2000 ops checked in {:?}", start.elapsed());
        }
    }

    #[test]
    fn random_history_with_one_stale_read_fails() {
        // Values are unique, so reading the first put's value after a later
        // write completed is provably stale, even among timed-out writes.
        for (seed, unknown_one_in) in [(5, 0), (21, 100)] {
            let mut h = random_history(seed, 2_000, u64::MAX, unknown_one_in);
            let p = h.iter().position(|c| c.outcome == Outcome::Put).unwrap();
            let overwritten_before = |t: u64| {
                let write = |w: &&Call| matches!(w.outcome, Outcome::Put | Outcome::Delete);
                h.iter()
                    .filter(write)
                    .any(|w| h[p].ret < w.call && w.ret < t)
            };
            let g = (h.len() / 2..h.len())
                .find(|&g| matches!(h[g].op, Op::Get) && overwritten_before(h[g].call))
                .unwrap();
            let Op::Put(v) = h[p].op.clone() else {
                unreachable!()
            };
            h[g].outcome = Outcome::Get(Some(v));
            let start = Instant::now();
            let err = check(&h).unwrap_err();
            println!("seed {seed} rejected in {:?}:\n{err}", start.elapsed());
            assert!(err.contains(&format!("#{g} ")), "{err}");
        }
    }

    /// Exhaustive oracle: any real-time-respecting order of all known ops and
    /// some unknown ones, replayed on the real register.
    fn brute(h: &[Call], pending: &mut Vec<usize>, reg: &Value) -> bool {
        let ret = |c: &Call| {
            if c.outcome == Outcome::Unknown {
                u64::MAX
            } else {
                c.ret
            }
        };
        pending.iter().all(|&x| h[x].outcome == Outcome::Unknown)
            || (0..pending.len()).any(|k| {
                let (x, mut next) = (pending[k], reg.clone());
                let outcome = run(&mut next, &h[x].op);
                if pending.iter().any(|&y| ret(&h[y]) < h[x].call)
                    || (h[x].outcome != Outcome::Unknown && outcome != h[x].outcome)
                {
                    return false;
                }
                pending.remove(k);
                let ok = brute(h, pending, &next);
                pending.insert(k, x);
                ok
            })
    }

    #[test]
    fn agrees_with_brute_force_on_tiny_histories() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let value = |rng: &mut XorShift| {
            Some(rng.below(4))
                .filter(|&k| k > 0)
                .map(|k| format!("v{k}"))
        };
        let mut linearizable = 0;
        for _ in 0..20_000 {
            let n = 1 + rng.below(7) as usize;
            let h: Vec<Call> = (0..n)
                .map(|client| {
                    let op = match rng.below(5) {
                        0 => Op::Put(format!("v{}", 1 + rng.below(3))),
                        1 => Op::Delete,
                        2 | 3 => Op::Get,
                        _ => Op::Cas {
                            expect: value(&mut rng),
                            new: format!("v{}", 1 + rng.below(3)),
                        },
                    };
                    let at = rng.below(20);
                    let outcome = match (&op, rng.below(4)) {
                        (_, 0) => Outcome::Unknown,
                        (Op::Get, _) => Outcome::Get(value(&mut rng)),
                        (Op::Cas { .. }, k) => Outcome::Cas(k == 1),
                        (op, _) => run(&mut None, op),
                    };
                    let ret = if outcome == Outcome::Unknown {
                        u64::MAX
                    } else {
                        at + rng.below(10)
                    };
                    call(client, op, at, ret, outcome)
                })
                .collect();
            let expected = brute(&h, &mut (0..n).collect(), &None);
            assert_eq!(check(&h).is_ok(), expected, "{h:#?}");
            linearizable += usize::from(expected);
        }
        assert!((2_000..18_000).contains(&linearizable), "{linearizable}");
    }
}
