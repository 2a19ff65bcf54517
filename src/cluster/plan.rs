//! The fleet's decision, as a pure function: given what one balancing
//! round read from etcd (the live members, the owner keys) and what this
//! agent runs, which sources to stop, adopt, release and take. No IO and no
//! clock: the coordinator gathers the inputs, calls [`plan`] and carries
//! the actions out in order, so the rule is tested by tables
//! (`tests` below) rather than by a fleet.
//!
//! The plan assumes every action succeeds. The one outcome it plans
//! around is a take lost to another agent that took the same source in
//! the same round: [`Plan::spare`] lists the next candidates, and the
//! coordinator takes from them until it owns [`Plan::fair`] sources. Any
//! other surprise (a release the pipeline did not confirm, a cursor that
//! could not be stored) is seen and corrected by the next round.

use std::collections::BTreeMap;

/// A live member, as its `members/<name>` key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The agent's name.
    pub name: String,
    /// The lease its member key is bound to.
    pub lease: i64,
}

/// An `owners/<source>` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owning agent's name (the key's value).
    pub agent: String,
    /// The key's create revision: the owner's fencing token.
    pub revision: i64,
    /// The lease the key is bound to.
    pub lease: i64,
}

/// This agent: its name, its lease, and the sources it runs (source →
/// create revision of the owner key it took).
#[derive(Debug, Clone, Copy)]
pub struct Mine<'a> {
    /// The agent's name.
    pub name: &'a str,
    /// Its lease (non-zero: the coordinator plans only once it joined).
    pub lease: i64,
    /// The sources it runs, with the revision of their owner keys.
    pub owned: &'a BTreeMap<String, i64>,
}

/// Why a source is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It is no longer in the config.
    Unconfigured,
    /// This agent runs more than the fair share (a member joined).
    OverShare,
}

/// One thing to do, in the order [`Plan::actions`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// This agent's member key is gone (revoked, or another agent with the
    /// same name): stop every poller and join again. Always alone.
    Fence,
    /// The source's owner key is no longer the one this agent created:
    /// stop its poller at once (no checkpoint: it is not ours to write).
    Stop(String),
    /// An owner key bound to this agent's lease that it does not run (kept
    /// through an etcd outage, or taken by a round cut short): poll the
    /// source again.
    Adopt {
        /// The source.
        source: String,
        /// The owner key's create revision.
        revision: i64,
    },
    /// Such an owner key for a source no longer configured: delete it (no
    /// checkpoint).
    Drop {
        /// The source.
        source: String,
        /// The owner key's create revision.
        revision: i64,
    },
    /// Release a source gracefully: stop, drain, checkpoint, delete the key.
    Release(String, Why),
    /// Take a source nobody owns.
    Take(String),
}

/// What one round does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The actions, in order.
    pub actions: Vec<Action>,
    /// The fair share: ⌈configured sources ÷ live members⌉.
    pub fair: usize,
    /// Further sources nobody owns, in order of preference, to take if a
    /// [`Action::Take`] is lost to another agent (until this agent owns
    /// `fair`).
    pub spare: Vec<String>,
}

impl Plan {
    /// Whether the plan is to fence (this agent is no longer a member).
    pub fn fences(&self) -> bool {
        self.actions.first() == Some(&Action::Fence)
    }
}

/// Where an agent starts looking for sources to take, among `n`: a hash of
/// its name, so that agents starting together spread over the sources
/// instead of all asking for the first one. Deterministic: the same name
/// starts at the same place on every agent and every run.
pub fn rotation(name: &str, n: usize) -> usize {
    use std::hash::{Hash, Hasher};
    // `DefaultHasher::new()` has fixed keys: the same value on every agent.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    (h.finish() as usize) % n.max(1)
}

/// The round's decision (the rules are in the module header of `cluster`):
///
/// 1. this agent's member key must be there, bound to its lease, else
///    [`Action::Fence`] and nothing else;
/// 2. [`Action::Stop`] every source whose owner key is gone or was created
///    again (another revision), in source order;
/// 3. [`Action::Adopt`] the owner keys bound to this lease, with this
///    agent's name, that it does not run ([`Action::Drop`] when the source
///    is no longer configured), in source order;
/// 4. [`Action::Release`] the sources no longer configured, then, while
///    over the fair share, the last in source order;
/// 5. [`Action::Take`] sources with no owner key, from [`rotation`] on,
///    round the configured order, up to the fair share. An owner key of
///    any agent, member or not, counts: it goes with its lease.
pub fn plan(members: &[Member], owners: &BTreeMap<String, Owner>, mine: Mine<'_>, sources: &[String]) -> Plan {
    if !members.iter().any(|m| m.name == mine.name && m.lease == mine.lease) {
        return Plan { actions: vec![Action::Fence], ..Plan::default() };
    }
    let mut actions = Vec::new();
    let mut owned = mine.owned.clone();
    owned.retain(|s, revision| {
        let held = owners.get(s).is_some_and(|o| o.revision == *revision);
        if !held {
            actions.push(Action::Stop(s.clone()));
        }
        held
    });
    for (s, o) in owners {
        if o.lease != mine.lease || o.agent != mine.name || owned.contains_key(s) {
            continue;
        }
        if sources.contains(s) {
            actions.push(Action::Adopt { source: s.clone(), revision: o.revision });
            owned.insert(s.clone(), o.revision);
        } else {
            actions.push(Action::Drop { source: s.clone(), revision: o.revision });
        }
    }
    owned.retain(|s, _| {
        let configured = sources.contains(s);
        if !configured {
            actions.push(Action::Release(s.clone(), Why::Unconfigured));
        }
        configured
    });
    let fair = sources.len().div_ceil(members.len().max(1));
    while owned.len() > fair {
        let Some((s, _)) = owned.pop_last() else { break };
        actions.push(Action::Release(s, Why::OverShare));
    }
    let n = sources.len();
    let from = rotation(mine.name, n);
    let mut spare = Vec::new();
    let mut taking = owned.len();
    for i in 0..n {
        let s = &sources[(from + i) % n];
        if owners.contains_key(s) || owned.contains_key(s) {
            continue;
        }
        if taking < fair {
            actions.push(Action::Take(s.clone()));
            taking += 1;
        } else {
            spare.push(s.clone());
        }
    }
    Plan { actions, fair, spare }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One round as this agent, `a`, sees it. A member's lease is its
    /// place in `members` plus one; an owner key that names no member is
    /// bound to lease 99.
    struct Case {
        what: &'static str,
        members: &'static [&'static str],
        /// Source, owning agent, create revision.
        owners: &'static [(&'static str, &'static str, i64)],
        /// The sources `a` runs, with the revision of the key it took.
        mine: &'static [(&'static str, i64)],
        sources: &'static [&'static str],
        fair: usize,
        /// The actions other than takes, in order.
        then: &'static [&'static str],
        /// How many sources it takes, and the free sources it takes them
        /// from (the rest are the spares).
        takes: (usize, &'static [&'static str]),
    }

    const ME: &str = "a";

    fn lease_of(members: &[&str], agent: &str) -> i64 {
        members.iter().position(|m| *m == agent).map_or(99, |i| i as i64 + 1)
    }

    fn render(a: &Action) -> String {
        match a {
            Action::Fence => "fence".into(),
            Action::Stop(s) => format!("stop {s}"),
            Action::Adopt { source, revision } => format!("adopt {source}@{revision}"),
            Action::Drop { source, revision } => format!("drop {source}@{revision}"),
            Action::Release(s, Why::Unconfigured) => format!("release {s} (unconfigured)"),
            Action::Release(s, Why::OverShare) => format!("release {s} (over share)"),
            Action::Take(s) => format!("take {s}"),
        }
    }

    fn run(c: &Case) -> Plan {
        let members: Vec<Member> =
            c.members.iter().map(|m| Member { name: m.to_string(), lease: lease_of(c.members, m) }).collect();
        let owners: BTreeMap<String, Owner> = c
            .owners
            .iter()
            .map(|(s, who, revision)| {
                (s.to_string(), Owner { agent: who.to_string(), revision: *revision, lease: lease_of(c.members, who) })
            })
            .collect();
        let owned: BTreeMap<String, i64> = c.mine.iter().map(|(s, r)| (s.to_string(), *r)).collect();
        let sources: Vec<String> = c.sources.iter().map(|s| s.to_string()).collect();
        let mine = Mine { name: ME, lease: lease_of(c.members, ME), owned: &owned };
        let p = plan(&members, &owners, mine, &sources);
        assert_eq!(plan(&members, &owners, mine, &sources), p, "{}: the same view gives the same plan", c.what);
        p
    }

    fn check(c: &Case) {
        let p = run(c);
        let what = c.what;
        assert_eq!(p.fair, c.fair, "{what}: fair share");
        let (takes, others): (Vec<&Action>, Vec<&Action>) =
            p.actions.iter().partition(|a| matches!(a, Action::Take(_)));
        let others: Vec<String> = others.into_iter().map(render).collect();
        assert_eq!(others, c.then, "{what}: actions");
        let takes: Vec<&str> = takes
            .into_iter()
            .map(|a| match a {
                Action::Take(s) => s.as_str(),
                _ => unreachable!(),
            })
            .collect();
        assert!(
            p.actions.iter().skip_while(|a| !matches!(a, Action::Take(_))).all(|a| matches!(a, Action::Take(_))),
            "{what}: takes come last: {:?}",
            p.actions
        );
        assert_eq!(takes.len(), c.takes.0, "{what}: {takes:?} taken");
        // Takes, then spares: every free source once, round the configured
        // order from this agent's rotation.
        let walk: Vec<&str> = takes.iter().copied().chain(p.spare.iter().map(String::as_str)).collect();
        let mut free = walk.clone();
        free.sort_unstable();
        assert_eq!(free, c.takes.1, "{what}: free sources (taken {takes:?}, spare {:?})", p.spare);
        let n = c.sources.len();
        let from = rotation(ME, n);
        let at: Vec<usize> =
            walk.iter().map(|s| (c.sources.iter().position(|x| x == s).unwrap() + n - from) % n).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{what}: {walk:?} is not in rotation order from {from}");
    }

    const S3: &[&str] = &["s1", "s2", "s3"];
    const S6: &[&str] = &["s1", "s2", "s3", "s4", "s5", "s6"];
    const S8: &[&str] = &["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"];
    const S30: &[&str] = &[
        "s01", "s02", "s03", "s04", "s05", "s06", "s07", "s08", "s09", "s10", "s11", "s12", "s13", "s14", "s15", "s16",
        "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30",
    ];

    /// `(source, agent, 1)` for consecutive runs of S30: a 8, b 8, c 7, d 7.
    const S30_OWNERS_8877: &[(&str, &str, i64)] = &[
        ("s01", "a", 1),
        ("s02", "a", 1),
        ("s03", "a", 1),
        ("s04", "a", 1),
        ("s05", "a", 1),
        ("s06", "a", 1),
        ("s07", "a", 1),
        ("s08", "a", 1),
        ("s09", "b", 1),
        ("s10", "b", 1),
        ("s11", "b", 1),
        ("s12", "b", 1),
        ("s13", "b", 1),
        ("s14", "b", 1),
        ("s15", "b", 1),
        ("s16", "b", 1),
        ("s17", "c", 1),
        ("s18", "c", 1),
        ("s19", "c", 1),
        ("s20", "c", 1),
        ("s21", "c", 1),
        ("s22", "c", 1),
        ("s23", "c", 1),
        ("s24", "d", 1),
        ("s25", "d", 1),
        ("s26", "d", 1),
        ("s27", "d", 1),
        ("s28", "d", 1),
        ("s29", "d", 1),
        ("s30", "d", 1),
    ];
    const S30_MINE_8: &[(&str, i64)] =
        &[("s01", 1), ("s02", 1), ("s03", 1), ("s04", 1), ("s05", 1), ("s06", 1), ("s07", 1), ("s08", 1)];

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        Case {
            what: "first start, one agent: it takes every source",
            members: &["a"], owners: &[], mine: &[], sources: S3,
            fair: 3, then: &[], takes: (3, S3),
        },
        Case {
            what: "first start, three agents: one source each",
            members: &["a", "b", "c"], owners: &[], mine: &[], sources: S3,
            fair: 1, then: &[], takes: (1, S3),
        },
        Case {
            what: "first start, three agents, another took one already",
            members: &["a", "b", "c"], owners: &[("s2", "b", 1)], mine: &[], sources: S3,
            fair: 1, then: &[], takes: (1, &["s1", "s3"]),
        },
        Case {
            what: "nothing to do when balanced",
            members: &["a", "b"],
            owners: &[("s1", "a", 1), ("s2", "a", 1), ("s3", "a", 1), ("s4", "b", 1), ("s5", "b", 1), ("s6", "b", 1)],
            mine: &[("s1", 1), ("s2", 1), ("s3", 1)], sources: S6,
            fair: 3, then: &[], takes: (0, &[]),
        },
        Case {
            what: "a member left and its lease is still alive: its keys hold its sources",
            members: &["a", "b"],
            owners: &[("s1", "a", 1), ("s2", "a", 1), ("s3", "b", 1), ("s4", "b", 1), ("s5", "c", 1), ("s6", "c", 1)],
            mine: &[("s1", 1), ("s2", 1)], sources: S6,
            fair: 3, then: &[], takes: (0, &[]),
        },
        Case {
            what: "a member left and its lease expired: its sources are orphaned and shared out",
            members: &["a", "b"],
            owners: &[("s1", "a", 1), ("s2", "a", 1), ("s3", "b", 1), ("s4", "b", 1)],
            mine: &[("s1", 1), ("s2", 1)], sources: S6,
            fair: 3, then: &[], takes: (1, &["s5", "s6"]),
        },
        Case {
            what: "a member joined: the others release down to the fair share, the last by name",
            members: &["a", "b", "c", "d"],
            owners: &[("s1", "a", 1), ("s2", "a", 1), ("s3", "a", 1), ("s4", "b", 1), ("s5", "b", 1),
                      ("s6", "b", 1), ("s7", "c", 1), ("s8", "c", 1)],
            mine: &[("s1", 1), ("s2", 1), ("s3", 1)], sources: S8,
            fair: 2, then: &["release s3 (over share)"], takes: (0, &[]),
        },
        Case {
            what: "two members joined: two released, from the last name down",
            members: &["a", "b", "c", "d"],
            owners: &[("s1", "a", 1), ("s2", "a", 1), ("s3", "a", 1), ("s4", "a", 1),
                      ("s5", "b", 1), ("s6", "b", 1), ("s7", "b", 1), ("s8", "b", 1)],
            mine: &[("s1", 1), ("s2", 1), ("s3", 1), ("s4", 1)], sources: S8,
            fair: 2, then: &["release s4 (over share)", "release s3 (over share)"], takes: (0, &[]),
        },
        Case {
            what: "the joining member: under its share, it takes only what nobody owns",
            members: &["a", "b", "c"],
            owners: &[("s1", "b", 1), ("s2", "b", 1), ("s3", "b", 1), ("s4", "c", 1), ("s5", "c", 1)],
            mine: &[], sources: S6,
            fair: 2, then: &[], takes: (1, &["s6"]),
        },
        Case {
            what: "30 sources over 4 agents, first start: a share of 8",
            members: &["a", "b", "c", "d"], owners: &[], mine: &[], sources: S30,
            fair: 8, then: &[], takes: (8, S30),
        },
        Case {
            what: "30 sources over 4 agents, 8/8/7/7: balanced",
            members: &["a", "b", "c", "d"], owners: S30_OWNERS_8877, mine: S30_MINE_8, sources: S30,
            fair: 8, then: &[], takes: (0, &[]),
        },
        Case {
            what: "30 sources over 4 agents, d left: a share of 10, d's 7 orphaned",
            members: &["a", "b", "c"], owners: S30_OWNERS_8877.split_at(23).0, mine: S30_MINE_8, sources: S30,
            fair: 10, then: &[], takes: (2, &["s24", "s25", "s26", "s27", "s28", "s29", "s30"]),
        },
        Case {
            what: "sources added to the config: the share grows and the new ones are taken",
            members: &["a", "b"],
            owners: &[("s1", "a", 1), ("s2", "a", 1), ("s3", "b", 1), ("s4", "b", 1)],
            mine: &[("s1", 1), ("s2", 1)], sources: S6,
            fair: 3, then: &[], takes: (1, &["s5", "s6"]),
        },
        Case {
            what: "a source removed from the config: released first, then the share",
            members: &["a", "b"],
            owners: &[("s1", "a", 1), ("s2", "a", 1), ("s3", "a", 1), ("s4", "b", 1), ("s5", "b", 1)],
            mine: &[("s1", 1), ("s2", 1), ("s3", 1)], sources: &["s1", "s3", "s4", "s5"],
            fair: 2, then: &["release s2 (unconfigured)"], takes: (0, &[]),
        },
        Case {
            what: "sources removed below this agent's count: unconfigured, then over share",
            members: &["a", "b"],
            owners: &[("s1", "a", 1), ("s2", "a", 1), ("s3", "a", 1), ("s4", "a", 1), ("s5", "b", 1)],
            mine: &[("s1", 1), ("s2", 1), ("s3", 1), ("s4", 1)], sources: &["s1", "s3", "s4", "s5"],
            fair: 2, then: &["release s2 (unconfigured)", "release s4 (over share)"], takes: (0, &[]),
        },
        Case {
            what: "an owner key of an unknown agent: not taken, and the share counts members only",
            members: &["a", "b"],
            owners: &[("s1", "zed", 1), ("s2", "b", 1)],
            mine: &[], sources: &["s1", "s2", "s3", "s4"],
            fair: 2, then: &[], takes: (2, &["s3", "s4"]),
        },
        Case {
            what: "ownership lost (the key was created again): stop it, and it is not free",
            members: &["a", "b"],
            owners: &[("s1", "b", 7), ("s2", "a", 1)],
            mine: &[("s1", 1), ("s2", 1)], sources: S3,
            fair: 2, then: &["stop s1"], takes: (1, &["s3"]),
        },
        Case {
            what: "ownership lost (the key is gone): stop it; free again, it may be taken back",
            members: &["a", "b"],
            owners: &[("s2", "a", 1)],
            mine: &[("s1", 1), ("s2", 1)], sources: S3,
            fair: 2, then: &["stop s1"], takes: (1, &["s1", "s3"]),
        },
        Case {
            what: "owner keys still bound to this lease: adopted (configured) or dropped",
            members: &["a", "b"],
            owners: &[("s1", "a", 4), ("s2", "b", 1), ("s9", "a", 5)],
            mine: &[], sources: S3,
            fair: 2, then: &["adopt s1@4", "drop s9@5"], takes: (1, &["s3"]),
        },
        Case {
            what: "adopted sources count towards the share",
            members: &["a", "b"],
            owners: &[("s1", "a", 4), ("s2", "a", 5), ("s3", "a", 6)],
            mine: &[("s1", 4)], sources: S3,
            fair: 2, then: &["adopt s2@5", "adopt s3@6", "release s3 (over share)"], takes: (0, &[]),
        },
        Case {
            what: "no sources configured: releases what it runs",
            members: &["a", "b"],
            owners: &[("s1", "a", 1)],
            mine: &[("s1", 1)], sources: &[],
            fair: 0, then: &["release s1 (unconfigured)"], takes: (0, &[]),
        },
        Case {
            what: "this agent's member key is gone: fence, nothing else",
            members: &["b"],
            owners: &[("s1", "a", 1)],
            mine: &[("s1", 1)], sources: S3,
            fair: 0, then: &["fence"], takes: (0, &[]),
        },
    ];

    #[test]
    fn plans_follow_the_fair_share_table() {
        for c in CASES {
            check(c);
        }
    }

    #[test]
    fn a_member_key_on_another_lease_is_not_this_agent() {
        let members = [Member { name: ME.into(), lease: 2 }];
        let owned = BTreeMap::new();
        let p = plan(&members, &BTreeMap::new(), Mine { name: ME, lease: 1, owned: &owned }, &["s1".into()]);
        assert!(p.fences(), "{p:?}");
        assert_eq!(p.actions, [Action::Fence]);
    }

    #[test]
    fn an_owner_key_of_this_name_on_an_older_lease_is_neither_adopted_nor_taken() {
        let members = [Member { name: ME.into(), lease: 2 }];
        let owners = BTreeMap::from([("s1".to_string(), Owner { agent: ME.into(), revision: 3, lease: 1 })]);
        let owned = BTreeMap::new();
        let sources = ["s1".to_string(), "s2".to_string()];
        let p = plan(&members, &owners, Mine { name: ME, lease: 2, owned: &owned }, &sources);
        assert_eq!(p, Plan { actions: vec![Action::Take("s2".into())], fair: 2, spare: vec![] });
    }

    #[test]
    fn a_lost_take_falls_back_to_the_spares_in_order() {
        let sources: Vec<String> = S8.iter().map(|s| s.to_string()).collect();
        let members: Vec<Member> = ["a", "b"].iter().map(|m| Member { name: m.to_string(), lease: 1 }).collect();
        let owned = BTreeMap::new();
        let p = plan(&members, &BTreeMap::new(), Mine { name: ME, lease: 1, owned: &owned }, &sources);
        let from = rotation(ME, sources.len());
        let order: Vec<String> = (0..8).map(|i| sources[(from + i) % 8].clone()).collect();
        let takes: Vec<String> = order[..4].to_vec();
        assert_eq!(p.actions, takes.into_iter().map(Action::Take).collect::<Vec<_>>());
        assert_eq!(p.spare, order[4..]);
    }

    #[test]
    fn agents_start_taking_at_different_places() {
        let starts: std::collections::BTreeSet<usize> = (0..8).map(|i| rotation(&format!("agent-{i}"), 30)).collect();
        assert!(starts.len() > 1, "{starts:?}");
        assert_eq!(rotation("agent-0", 30), rotation("agent-0", 30));
        assert_eq!(rotation("anything", 0), 0);
    }
}
