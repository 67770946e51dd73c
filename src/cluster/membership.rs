//! Cluster membership: the table of members this node knows and the state machine that keeps
//! it current. No sockets here: [`gossip`](super::gossip) moves tables between nodes and
//! calls [`Membership::merge`] with what arrives and [`Membership::tick`] on a timer, so the
//! rules below are tested deterministically with synthetic `Instant`s.
//!
//! Every member carries two counters that only its owner bumps:
//! - the *incarnation*: at start one more than the previous run's (kept on disk, see
//!   [`incarnation`](super::incarnation)) and at least the start time in unix ms, so a
//!   restarted node supersedes its old state; raised again each time it refutes a claim;
//! - the *heartbeat*: bumped by the owner on every tick.
//!
//! All counter arithmetic saturates: nothing a peer sends can make a counter wrap.
//!
//! Merge rules, for a digest about another member:
//! 1. a higher incarnation wins;
//! 2. at the same incarnation, a higher heartbeat wins;
//! 3. a `Left` with the same or a higher incarnation wins (and a same-incarnation heartbeat
//!    does not revive a member that left: only a new incarnation does).
//!
//! Two kinds of digest are ignored whoever sends them (see [`Arrival`]):
//! - an *absurd incarnation*: `u64::MAX`, or more than [`MAX_INCARNATION_LEAP`] (2^32, about
//!   50 days in ms) above both what this node knows of the member and its own clock in unix
//!   ms. Honest incarnations are start times plus a few refutations, so they never come near;
//!   a forged one that did could leave the member no higher value to refute with. The bound
//!   moves with the clock, so a node restarted after months is still accepted.
//! - a `Left` about a member, from a frame whose sender is someone else: only a node itself
//!   announces its departure. (With `--cluster_secret_file` the sender is authenticated by
//!   the frame's MAC; without one it is only the `from` the frame claims.) A member that left
//!   is therefore learned only from its own announcement; a node that missed it sees the
//!   member fall silent, suspect then dead, instead.
//!
//! A winning digest is news from its owner: the member becomes `Alive` (or `Left`) and its
//! `last_heard` is now. Suspect and dead are *local* judgements of each observer and are not
//! adopted from peers (except for members heard of for the first time): on [`tick`]
//! a member whose news is older than `suspect` becomes `Suspect`, older than `dead` `Dead`.
//!
//! A member silent for longer than `dead` + `expiry` (`--dead_member_expiry`, default 72 h
//! as Serf's reconnect timeout), dead or left, is *removed* on [`tick`]: it leaves the
//! table and the ring, and its share of the series goes to the others (repair copies it
//! there). Every node judges this by its own clock, so for a while peers may still send
//! digests of it. A removed member is therefore remembered for another `expiry` with the
//! incarnation it had: digests at that incarnation or an older one are ignored, whatever
//! their heartbeat or state, so a peer that still lists it cannot bring it back. A node
//! that restarts has a higher incarnation (at least its start time, see
//! [`incarnation`](super::incarnation)): it rejoins as a new member.
//!
//! A digest about this node is never adopted. If a peer claims it is suspect, dead or left
//! at its current incarnation (or a later one), or alive at a later incarnation or at the
//! same one with a heartbeat this node never sent, this node *refutes*: it takes an
//! incarnation above the claim's, which every other node then accepts as news.
//!
//! [`tick`]: Membership::tick

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Default time without news before a member is suspected.
pub const DEFAULT_SUSPECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Default time without news before a member is declared dead.
pub const DEFAULT_DEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a member stays in the table once dead (Serf's `reconnect_timeout`).
pub const DEFAULT_DEAD_MEMBER_EXPIRY: Duration = Duration::from_secs(72 * 3600);

/// How far above both the known incarnation of a member and the clock (unix ms) a digest's
/// incarnation may be before it is ignored as absurd: 2^32 ms, about 50 days.
pub const MAX_INCARNATION_LEAP: u64 = 1 << 32;

/// Where a table comes from and when: what [`Membership::merge`] judges digests by.
#[derive(Clone, Copy, Debug)]
pub struct Arrival<'a> {
    /// The member that sent the frame (its `from`).
    pub sender: &'a str,
    /// Local monotonic time of arrival.
    pub at: Instant,
    /// Wall-clock time of arrival, unix ms (bounds plausible incarnations).
    pub unix_ms: u64,
}

/// How this node sees a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    Alive,
    Suspect,
    Dead,
    /// Announced a clean shutdown: out of the ring until it comes back.
    Left,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    /// `host:port` of its HTTP API, as it advertises it.
    pub http_addr: String,
    /// `host:port` of its gossip listener.
    pub gossip_addr: String,
    pub state: MemberState,
    /// When this node last heard news of it (local clock).
    pub last_heard: Instant,
}

/// One member as it travels between nodes: what a peer knows of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub id: String,
    pub http_addr: String,
    pub gossip_addr: String,
    pub incarnation: u64,
    pub heartbeat: u64,
    pub state: MemberState,
}

/// How long a member may stay silent before it is suspected, then declared dead, and how
/// long it then stays dead in the table before it is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureTimeouts {
    pub suspect: Duration,
    pub dead: Duration,
    /// Time dead (or left) before removal (`--dead_member_expiry`).
    pub expiry: Duration,
}

impl Default for FailureTimeouts {
    fn default() -> FailureTimeouts {
        FailureTimeouts {
            suspect: DEFAULT_SUSPECT_TIMEOUT,
            dead: DEFAULT_DEAD_TIMEOUT,
            expiry: DEFAULT_DEAD_MEMBER_EXPIRY,
        }
    }
}

/// A state change this node observed (`from: None`: a member heard of for the first time;
/// `to: None`: a member removed from the table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub id: String,
    pub from: Option<MemberState>,
    pub to: Option<MemberState>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.from, self.to) {
            (Some(from), Some(to)) => write!(f, "{}: {from} -> {to}", self.id),
            (None, Some(to)) => write!(f, "{}: joined as {to}", self.id),
            (Some(from), None) => write!(f, "{}: removed (was {from})", self.id),
            (None, None) => write!(f, "{}: unknown", self.id),
        }
    }
}

/// A member removed from the table: digests at or below its last incarnation are old news
/// until `until`.
#[derive(Clone, Debug)]
struct Removed {
    incarnation: u64,
    until: Instant,
}

#[derive(Clone, Debug)]
struct Entry {
    member: Member,
    incarnation: u64,
    heartbeat: u64,
}

impl Entry {
    fn digest(&self) -> Digest {
        Digest {
            id: self.member.id.clone(),
            http_addr: self.member.http_addr.clone(),
            gossip_addr: self.member.gossip_addr.clone(),
            incarnation: self.incarnation,
            heartbeat: self.heartbeat,
            state: self.member.state,
        }
    }
}

/// The members this node knows, itself included.
#[derive(Clone, Debug)]
pub struct Membership {
    me: String,
    members: BTreeMap<String, Entry>,
    /// Members removed after their expiry, see the module doc.
    removed: BTreeMap<String, Removed>,
}

impl Membership {
    /// A table holding only `me`, whose incarnation is the current unix time in ms.
    pub fn new(me: Member) -> Membership {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(1);
        Membership::with_incarnation(me, now_ms)
    }

    /// A table holding only `me` at `incarnation`.
    pub fn with_incarnation(me: Member, incarnation: u64) -> Membership {
        let id = me.id.clone();
        let entry = Entry {
            member: me,
            incarnation,
            heartbeat: 0,
        };
        Membership {
            me: id.clone(),
            members: BTreeMap::from([(id, entry)]),
            removed: BTreeMap::new(),
        }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.own().incarnation
    }

    fn own(&self) -> &Entry {
        self.members.get(&self.me).expect("me is always a member")
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values().map(|e| &e.member)
    }

    pub fn get(&self, id: &str) -> Option<&Member> {
        self.members.get(id).map(|e| &e.member)
    }

    /// Adds or replaces a member as-is (tests of code that reads membership).
    #[cfg(test)]
    pub fn insert_for_test(&mut self, member: Member) {
        self.members.insert(
            member.id.clone(),
            Entry {
                member,
                incarnation: 0,
                heartbeat: 0,
            },
        );
    }

    /// Whether `id` was removed from the table after its expiry, and is still remembered
    /// as removed (for another expiry).
    pub fn is_removed(&self, id: &str) -> bool {
        self.removed.contains_key(id)
    }

    /// Ids of the members that hold ring positions: every member that has not left.
    pub fn ring_member_ids(&self) -> Vec<String> {
        self.members()
            .filter(|m| m.state != MemberState::Left)
            .map(|m| m.id.clone())
            .collect()
    }

    /// What this node would tell a peer about `id`.
    pub fn digest(&self, id: &str) -> Option<Digest> {
        self.members.get(id).map(Entry::digest)
    }

    /// The whole table as it travels to peers, ordered by id.
    pub fn digests(&self) -> Vec<Digest> {
        self.members.values().map(Entry::digest).collect()
    }

    /// Gossip addresses of the other members worth talking to: every one that has not left.
    pub fn peer_addrs(&self) -> Vec<String> {
        self.members()
            .filter(|m| m.id != self.me && m.state != MemberState::Left)
            .map(|m| m.gossip_addr.clone())
            .collect()
    }

    /// Whether another member is believed reachable (alive or merely suspected).
    pub fn knows_live_peer(&self) -> bool {
        self.members().any(|m| {
            m.id != self.me && matches!(m.state, MemberState::Alive | MemberState::Suspect)
        })
    }

    /// Merges a peer's table as it arrived; returns the state changes it caused.
    pub fn merge(&mut self, digests: &[Digest], arrival: Arrival<'_>) -> Vec<Change> {
        let now = arrival.at;
        let mut changes = Vec::new();
        for d in digests {
            let known = self.members.get(&d.id).map_or(0, |e| e.incarnation);
            if is_absurd(d.incarnation, known, arrival.unix_ms) {
                continue;
            }
            if d.id == self.me {
                self.refute(d);
                continue;
            }
            if d.state == MemberState::Left && arrival.sender != d.id {
                continue;
            }
            if let Some(removed) = self.removed.get(&d.id) {
                if d.incarnation <= removed.incarnation {
                    continue;
                }
                self.removed.remove(&d.id);
            }
            let Some(entry) = self.members.get_mut(&d.id) else {
                let entry = Entry {
                    member: Member {
                        id: d.id.clone(),
                        http_addr: d.http_addr.clone(),
                        gossip_addr: d.gossip_addr.clone(),
                        state: d.state,
                        last_heard: now,
                    },
                    incarnation: d.incarnation,
                    heartbeat: d.heartbeat,
                };
                self.members.insert(d.id.clone(), entry);
                changes.push(Change {
                    id: d.id.clone(),
                    from: None,
                    to: Some(d.state),
                });
                continue;
            };
            if !supersedes(d, entry) {
                continue;
            }
            entry.incarnation = d.incarnation;
            entry.heartbeat = d.heartbeat;
            entry.member.http_addr.clone_from(&d.http_addr);
            entry.member.gossip_addr.clone_from(&d.gossip_addr);
            entry.member.last_heard = now;
            let to = if d.state == MemberState::Left {
                MemberState::Left
            } else {
                MemberState::Alive
            };
            if entry.member.state != to {
                changes.push(Change {
                    id: d.id.clone(),
                    from: Some(entry.member.state),
                    to: Some(to),
                });
                entry.member.state = to;
            }
        }
        changes
    }

    /// A claim about this node: refute a suspicion, death or departure at our current
    /// incarnation (or a later one), a later incarnation, or a heartbeat we never sent, by
    /// taking an incarnation above the claim's. At `u64::MAX - 1` the bump saturates at
    /// `u64::MAX`, which no accepted digest can reach (see [`MAX_INCARNATION_LEAP`]).
    fn refute(&mut self, d: &Digest) {
        let me = self
            .members
            .get_mut(&self.me)
            .expect("me is always a member");
        if me.member.state == MemberState::Left {
            return;
        }
        let doubted = d.state != MemberState::Alive && d.incarnation >= me.incarnation;
        let forged_heartbeat = d.incarnation == me.incarnation && d.heartbeat > me.heartbeat;
        if doubted || forged_heartbeat || d.incarnation > me.incarnation {
            me.incarnation = d.incarnation.saturating_add(1).max(me.incarnation);
        }
    }

    /// Advances time to `now`: bumps this node's heartbeat, judges the others by how long
    /// ago their last news came, and removes those dead (or left) past the expiry. Returns
    /// the state changes.
    pub fn tick(&mut self, now: Instant, timeouts: &FailureTimeouts) -> Vec<Change> {
        let mut changes = Vec::new();
        let remove_after = timeouts.dead.saturating_add(timeouts.expiry);
        self.removed.retain(|_, r| now < r.until);
        let me = self.me.clone();
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|e| e.member.id != me)
            .filter(|e| matches!(e.member.state, MemberState::Dead | MemberState::Left))
            .filter(|e| now.saturating_duration_since(e.member.last_heard) >= remove_after)
            .map(|e| e.member.id.clone())
            .collect();
        for id in expired {
            if let Some(entry) = self.members.remove(&id) {
                let until = now.checked_add(timeouts.expiry).unwrap_or(now);
                self.removed.insert(
                    id.clone(),
                    Removed {
                        incarnation: entry.incarnation,
                        until,
                    },
                );
                changes.push(Change {
                    id,
                    from: Some(entry.member.state),
                    to: None,
                });
            }
        }
        for entry in self.members.values_mut() {
            let member = &mut entry.member;
            if member.id == self.me {
                if member.state != MemberState::Left {
                    entry.heartbeat = entry.heartbeat.saturating_add(1);
                    member.last_heard = now;
                }
                continue;
            }
            let silent = now.saturating_duration_since(member.last_heard);
            let to = match member.state {
                MemberState::Left => continue,
                _ if silent >= timeouts.dead => MemberState::Dead,
                _ if silent >= timeouts.suspect => MemberState::Suspect,
                state => state,
            };
            if to != member.state {
                changes.push(Change {
                    id: member.id.clone(),
                    from: Some(member.state),
                    to: Some(to),
                });
                member.state = to;
            }
        }
        changes
    }

    /// Marks this node as leaving (a clean shutdown); its digest now says `Left`.
    pub fn leave(&mut self) -> Change {
        let me = self
            .members
            .get_mut(&self.me)
            .expect("me is always a member");
        let change = Change {
            id: self.me.clone(),
            from: Some(me.member.state),
            to: Some(MemberState::Left),
        };
        me.member.state = MemberState::Left;
        change
    }
}

/// Whether `incarnation` is too high to be honest, for a member known at `known` and a
/// clock at `unix_ms`.
fn is_absurd(incarnation: u64, known: u64, unix_ms: u64) -> bool {
    incarnation == u64::MAX || incarnation > known.max(unix_ms).saturating_add(MAX_INCARNATION_LEAP)
}

/// Whether digest `d` is newer news than what `entry` holds.
fn supersedes(d: &Digest, entry: &Entry) -> bool {
    let left_here = entry.member.state == MemberState::Left;
    if d.incarnation != entry.incarnation {
        return d.incarnation > entry.incarnation;
    }
    match (d.state == MemberState::Left, left_here) {
        (true, false) => true,
        (_, true) => false,
        (false, false) => d.heartbeat > entry.heartbeat,
    }
}

#[cfg(test)]
mod tests {
    //! Scripts in the spirit of goldenscript: each line is a command run against one node's
    //! table, and the expected changes follow it as `> ` lines.
    //!
    //! - `merge ID INC HB STATE @MS [from SENDER]`: a digest of ID arrives at MS ms (unix
    //!   time MS too) in a frame from SENDER (default: ID itself); INC may be `max`
    //! - `tick @MS`: the node ticks at MS ms (suspect after 3000 ms, dead after 10000 ms)
    //! - `expiry MS`: from now on a member dead (or left) for MS ms more is removed
    //! - `leave`: the node announces its departure
    //! - `removed ID`: prints whether ID is remembered as removed
    //! - `show ID`: prints `ID state inc=… hb=…`

    use super::*;

    const ME_INCARNATION: u64 = 100;

    fn member(id: &str, state: MemberState, at: Instant) -> Member {
        Member {
            id: id.into(),
            http_addr: format!("{id}:80"),
            gossip_addr: format!("{id}:90"),
            state,
            last_heard: at,
        }
    }

    fn parse_state(s: &str) -> MemberState {
        match s {
            "alive" => MemberState::Alive,
            "suspect" => MemberState::Suspect,
            "dead" => MemberState::Dead,
            "left" => MemberState::Left,
            other => panic!("unknown state {other}"),
        }
    }

    /// Runs `script` against a fresh table of node `a` (incarnation 100) and compares
    /// the output with the `> ` lines of the script.
    fn run(script: &str) {
        let t0 = Instant::now();
        let at = |ms: &str| t0 + Duration::from_millis(ms.trim_start_matches('@').parse().unwrap());
        let mut table =
            Membership::with_incarnation(member("a", MemberState::Alive, t0), ME_INCARNATION);
        let mut timeouts = FailureTimeouts::default();
        let mut expected = Vec::new();
        let mut actual = Vec::new();
        for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(out) = line.strip_prefix("> ") {
                expected.push(out.to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            actual.push(line.to_string());
            expected.push(line.to_string());
            let words: Vec<&str> = line.split_whitespace().collect();
            let changes = match words.as_slice() {
                ["merge", id, inc, hb, state, ms, rest @ ..] => {
                    let sender = match rest {
                        [] => id,
                        ["from", sender] => sender,
                        _ => panic!("bad script line: {line}"),
                    };
                    let d = Digest {
                        id: id.to_string(),
                        http_addr: format!("{id}:80"),
                        gossip_addr: format!("{id}:90"),
                        incarnation: match *inc {
                            "max" => u64::MAX,
                            n => n.parse().unwrap(),
                        },
                        heartbeat: hb.parse().unwrap(),
                        state: parse_state(state),
                    };
                    let arrival = Arrival {
                        sender,
                        at: at(ms),
                        unix_ms: ms.trim_start_matches('@').parse().unwrap(),
                    };
                    table.merge(&[d], arrival)
                }
                ["tick", ms] => table.tick(at(ms), &timeouts),
                ["expiry", ms] => {
                    timeouts.expiry = Duration::from_millis(ms.parse().unwrap());
                    Vec::new()
                }
                ["leave"] => vec![table.leave()],
                ["removed", id] => {
                    actual.push(table.is_removed(id).to_string());
                    Vec::new()
                }
                ["show", id] => {
                    actual.push(match table.digest(id) {
                        Some(d) => format!(
                            "{} {} inc={} hb={}",
                            d.id, d.state, d.incarnation, d.heartbeat
                        ),
                        None => format!("{id} not in the table"),
                    });
                    Vec::new()
                }
                _ => panic!("bad script line: {line}"),
            };
            actual.extend(changes.iter().map(|c| c.to_string()));
        }
        let expected: Vec<String> = expected
            .into_iter()
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(actual.join("\n"), expected.join("\n"));
    }

    #[test]
    fn higher_incarnation_wins_then_higher_heartbeat() {
        run("
            merge b 5 10 alive @0
            > b: joined as alive
            # an older incarnation, however high its heartbeat, is old news
            merge b 4 99 alive @100
            show b
            > b alive inc=5 hb=10
            merge b 5 9 alive @100
            show b
            > b alive inc=5 hb=10
            merge b 5 11 alive @100
            show b
            > b alive inc=5 hb=11
            merge b 6 0 alive @100
            show b
            > b alive inc=6 hb=0
        ");
    }

    #[test]
    fn silence_makes_suspect_then_dead_and_news_makes_alive() {
        run("
            merge b 5 1 alive @0
            > b: joined as alive
            tick @2999
            tick @3000
            > b: alive -> suspect
            tick @9999
            tick @10000
            > b: suspect -> dead
            # the same heartbeat again is no news
            merge b 5 1 alive @10500
            tick @11000
            merge b 5 2 alive @12000
            > b: dead -> alive
            tick @14999
            tick @15000
            > b: alive -> suspect
            merge b 5 3 alive @15100
            > b: suspect -> alive
        ");
    }

    #[test]
    fn peers_views_of_a_third_member_are_not_adopted() {
        run("
            merge b 5 1 alive @0
            > b: joined as alive
            # a peer suspecting b at b's current version does not make us suspect it
            merge b 5 1 suspect @100
            merge b 5 1 dead @100
            show b
            > b alive inc=5 hb=1
            # a newer heartbeat reported by a peer that thinks b dead is still news of b
            tick @3500
            > b: alive -> suspect
            merge b 5 2 dead @3600
            > b: suspect -> alive
        ");
    }

    #[test]
    fn first_news_of_a_member_takes_the_reported_state() {
        run("
            merge c 7 3 dead @0
            > c: joined as dead
            merge d 7 3 left @0
            > d: joined as left
        ");
    }

    #[test]
    fn left_wins_at_same_incarnation_and_only_a_new_incarnation_revives() {
        run("
            merge b 5 10 alive @0
            > b: joined as alive
            # a leave at the same incarnation wins even with a lower heartbeat
            merge b 5 3 left @100
            > b: alive -> left
            merge b 5 11 alive @200
            show b
            > b left inc=5 hb=3
            # a left member is never suspected
            tick @60000
            # a restarted node has a new incarnation (its start time)
            merge b 900 0 alive @60100
            > b: left -> alive
            # an old leave does not beat the new incarnation
            merge b 5 3 left @60200
            show b
            > b alive inc=900 hb=0
        ");
    }

    #[test]
    fn a_member_dead_past_the_expiry_is_removed_and_peers_cannot_bring_it_back() {
        run("
            expiry 20000
            merge b 5 7 alive @0
            > b: joined as alive
            tick @10000
            > b: alive -> dead
            # removed once dead + expiry (10 s + 20 s) have passed since the last news
            tick @29999
            tick @30000
            > b: removed (was dead)
            show b
            > b not in the table
            # a peer that still lists b (dead, or even alive at its old incarnation) does not
            # bring it back, whatever the heartbeat
            merge b 5 7 dead @30100 from c
            merge b 5 99 alive @30100 from c
            merge b 4 0 alive @30100
            show b
            > b not in the table
            removed b
            > true
            # a restarted b has a new incarnation: a new join
            merge b 900 0 alive @31000 from c
            > b: joined as alive
        ");
    }

    #[test]
    fn a_left_member_expires_too_and_its_memory_ends_after_another_expiry() {
        run("
            expiry 20000
            merge b 5 1 alive @0
            > b: joined as alive
            merge b 5 2 left @1000
            > b: alive -> left
            tick @30999
            tick @31000
            > b: removed (was left)
            tick @50999
            merge b 5 2 left @50999
            show b
            > b not in the table
            tick @51000
            # every peer removed it by now; a straggler's digest is first news again
            merge b 5 2 left @51001
            > b: joined as left
        ");
    }

    #[test]
    fn news_resets_the_expiry_clock() {
        run("
            expiry 20000
            merge c 3 1 alive @0
            > c: joined as alive
            tick @29000
            > c: alive -> dead
            merge c 3 2 alive @29500
            > c: dead -> alive
            tick @39500
            > c: alive -> dead
            tick @59499
            tick @59500
            > c: removed (was dead)
        ");
    }

    #[test]
    fn ticks_bump_own_heartbeat_and_never_suspect_self() {
        run("
            tick @1
            tick @50000
            show a
            > a alive inc=100 hb=2
        ");
    }

    #[test]
    fn suspicion_of_self_at_current_incarnation_is_refuted() {
        run("
            merge a 100 0 suspect @0
            show a
            > a alive inc=101 hb=0
            # a stale suspicion (older incarnation) needs no refutation
            merge a 100 0 dead @0
            show a
            > a alive inc=101 hb=0
            merge a 101 0 dead @0
            show a
            > a alive inc=102 hb=0
            # others' alive views of us are never adopted: an echo changes nothing, a
            # heartbeat we never sent is refuted
            merge a 102 0 alive @0
            show a
            > a alive inc=102 hb=0
            merge a 102 50 alive @0
            show a
            > a alive inc=103 hb=0
        ");
    }

    #[test]
    fn any_claim_about_self_at_or_above_own_incarnation_is_refuted() {
        run("
            merge a 100 0 left @0 from b
            show a
            > a alive inc=101 hb=0
            # a heartbeat this node never sent, at its own incarnation
            tick @1
            merge a 101 7 alive @2 from b
            show a
            > a alive inc=102 hb=1
            # a later incarnation, even claimed alive
            merge a 500 0 alive @3 from b
            show a
            > a alive inc=501 hb=1
            # the echo of our own digest is no claim
            merge a 501 1 alive @4 from b
            show a
            > a alive inc=501 hb=1
        ");
    }

    #[test]
    fn absurd_incarnations_about_self_are_ignored_and_the_largest_plausible_refuted() {
        run("
            merge a max 0 suspect @0 from b
            merge a max 0 dead @0 from b
            merge a max 0 left @0 from a
            merge a 18446744073709551614 0 dead @0 from b
            # own 100 + 2^32 + 1
            merge a 4294967397 0 dead @0 from b
            show a
            > a alive inc=100 hb=0
            # own 100 + 2^32 is still plausible, and refuted
            merge a 4294967396 0 dead @0 from b
            show a
            > a alive inc=4294967397 hb=0
        ");
    }

    #[test]
    fn absurd_incarnations_about_others_are_ignored_and_the_bound_follows_the_clock() {
        run("
            merge b max 0 alive @0
            merge b 4294967297 0 alive @0
            merge b 5 1 alive @0
            > b: joined as alive
            merge b max 2 left @1
            merge b 4294967306 2 alive @1
            show b
            > b alive inc=5 hb=1
            # a node first heard of long after the epoch: the clock raises the bound
            merge c 4294967396 0 alive @100
            > c: joined as alive
        ");
    }

    #[test]
    fn only_a_member_itself_announces_its_leave() {
        run("
            merge b 5 1 alive @0
            > b: joined as alive
            merge b 5 1 left @10 from c
            merge b 6 0 left @10 from c
            show b
            > b alive inc=5 hb=1
            # first news of a member that left, from someone else: not learned at all
            merge d 7 3 left @10 from c
            merge b 5 2 left @20
            > b: alive -> left
        ");
    }

    #[test]
    fn own_counters_saturate_instead_of_wrapping() {
        let t0 = Instant::now();
        let mut table =
            Membership::with_incarnation(member("a", MemberState::Alive, t0), u64::MAX - 1);
        table.members.get_mut("a").unwrap().heartbeat = u64::MAX;
        let claim = Digest {
            id: "a".into(),
            http_addr: String::new(),
            gossip_addr: String::new(),
            incarnation: u64::MAX - 1,
            heartbeat: 0,
            state: MemberState::Dead,
        };
        let arrival = Arrival {
            sender: "b",
            at: t0,
            unix_ms: 0,
        };
        table.merge(std::slice::from_ref(&claim), arrival);
        table.tick(t0, &FailureTimeouts::default());
        let me = table.digest("a").unwrap();
        assert_eq!((me.incarnation, me.heartbeat), (u64::MAX, u64::MAX));
        // Nothing can claim more now: u64::MAX itself is absurd.
        table.merge(
            &[Digest {
                incarnation: u64::MAX,
                ..claim
            }],
            arrival,
        );
        assert_eq!(table.incarnation(), u64::MAX);
        assert_eq!(table.get("a").unwrap().state, MemberState::Alive);
    }

    proptest::proptest! {
        /// Whatever digests arrive, nothing panics, this node stays alive, its incarnation
        /// never goes down, and every plausible claim that it is not alive is outbid.
        #[test]
        fn no_table_can_overflow_or_silence_this_node(
            digests in proptest::collection::vec(
                (0usize..3, proptest::num::u64::ANY, proptest::num::u64::ANY, 0usize..4, 0usize..3),
                1..20,
            ),
            unix_ms in proptest::num::u64::ANY,
        ) {
            let ids = ["a", "b", "c"];
            let states = [MemberState::Alive, MemberState::Suspect, MemberState::Dead, MemberState::Left];
            let t0 = Instant::now();
            let mut table = Membership::with_incarnation(member("a", MemberState::Alive, t0), ME_INCARNATION);
            for (id, inc, hb, state, sender) in digests {
                let d = Digest {
                    id: ids[id].into(),
                    http_addr: String::new(),
                    gossip_addr: String::new(),
                    incarnation: inc,
                    heartbeat: hb,
                    state: states[state],
                };
                let before = table.incarnation();
                let arrival = Arrival { sender: ids[sender], at: t0, unix_ms };
                table.merge(std::slice::from_ref(&d), arrival);
                table.tick(t0, &FailureTimeouts::default());
                let after = table.incarnation();
                proptest::prop_assert!(after >= before);
                proptest::prop_assert_eq!(table.get("a").map(|m| m.state), Some(MemberState::Alive));
                if d.id == "a" && d.state != MemberState::Alive && !is_absurd(inc, before, unix_ms) {
                    proptest::prop_assert!(after > inc || after == u64::MAX);
                }
            }
        }
    }

    #[test]
    fn leave_of_self_is_announced_and_not_refuted() {
        run("
            tick @1
            leave
            > a: alive -> left
            show a
            > a left inc=100 hb=1
            merge a 100 1 dead @2
            tick @3
            show a
            > a left inc=100 hb=1
        ");
    }

    #[test]
    fn ring_excludes_left_members_but_keeps_dead_ones() {
        let t0 = Instant::now();
        let mut table = Membership::with_incarnation(member("a", MemberState::Alive, t0), 1);
        let digest = |id: &str, state| Digest {
            id: id.into(),
            http_addr: String::new(),
            gossip_addr: format!("{id}:90"),
            incarnation: 1,
            heartbeat: 1,
            state,
        };
        for d in [
            digest("b", MemberState::Alive),
            digest("c", MemberState::Dead),
            digest("d", MemberState::Left),
        ] {
            let sender = d.id.clone();
            let arrival = Arrival {
                sender: &sender,
                at: t0,
                unix_ms: 0,
            };
            table.merge(&[d], arrival);
        }
        assert_eq!(table.ring_member_ids(), ["a", "b", "c"]);
        assert_eq!(table.peer_addrs(), ["b:90", "c:90"]);
        assert!(table.knows_live_peer());
        let ids: Vec<String> = table.digests().into_iter().map(|d| d.id).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
    }

    #[test]
    fn a_restarted_node_supersedes_its_old_self() {
        let t0 = Instant::now();
        let old = Membership::new(member("a", MemberState::Alive, t0));
        std::thread::sleep(Duration::from_millis(2));
        let new = Membership::new(member("a", MemberState::Alive, t0));
        let (old, new) = (old.digest("a").unwrap(), new.digest("a").unwrap());
        assert!(new.incarnation > old.incarnation);
    }
}
