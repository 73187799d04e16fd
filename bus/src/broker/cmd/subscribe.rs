//! `SUB` and `UNSUB`: join a queue group (creating it the first time), or leave it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tix_bus_client::protocol::{SubscribeOptions, Subscribed};

use crate::broker::core::{Core, Token};
use crate::broker::group::{Filter, Group, Member};
use crate::store::{self, Write};

impl Core {
    pub(in crate::broker) fn on_subscribe(
        &mut self,
        peer: Bytes,
        corr: u64,
        opts: SubscribeOptions,
        known: bool,
    ) {
        if !known {
            return self.reply_err(&peer, corr, "no session: send HELLO first");
        }
        let name: Arc<str> = Arc::from(opts.group.as_str());
        let filter = Filter::new(&opts.subjects);
        let gi = match self.group_index.get(&name) {
            Some(&gi) => {
                let g = &self.groups[gi];
                if g.dropping || g.rewinding {
                    let what = if g.dropping { "dropped" } else { "moved back" };
                    let message = format!("group {name} is being {what}; try again");
                    return self.reply_err(&peer, corr, &message);
                }
                let others = g.members.iter().any(|m| m.peer != peer);
                let differs = g.subjects != opts.subjects
                    || g.ack_wait.as_millis() as u64 != opts.ack_wait_ms
                    || g.max_in_flight != opts.max_in_flight
                    || g.max_deliveries != opts.max_deliveries;
                if g.ephemeral != opts.ephemeral || (others && differs) {
                    // Two deployments disagreeing on a live group would silently skip
                    // events of a subject or break its ordering: refuse instead.
                    let message = format!(
                        "group {name} is in use with other options (subjects {:?}, maxInFlight {}); stop its members first or use another group",
                        g.subjects, g.max_in_flight
                    );
                    return self.reply_err(&peer, corr, &message);
                }
                gi
            }
            None => {
                let row = store::GroupRow {
                    name: opts.group.clone(),
                    subjects: opts.subjects.clone(),
                    ack_wait_ms: opts.ack_wait_ms,
                    max_in_flight: opts.max_in_flight,
                    max_deliveries: opts.max_deliveries,
                    ack_floor: 0,
                };
                let mut g = Group::from_row(&row, Default::default());
                if opts.ephemeral {
                    g.ephemeral = true;
                    g.cursor = self.head;
                    g.persisted_floor = self.head;
                } else {
                    tracing::info!(group = %name, subjects = ?opts.subjects, "new group starts at the beginning of the log");
                }
                self.add_group(g)
            }
        };
        let ephemeral = opts.ephemeral;
        let g = &mut self.groups[gi];
        g.subjects = opts.subjects;
        g.filter = filter;
        g.ack_wait = Duration::from_millis(opts.ack_wait_ms);
        g.max_in_flight = opts.max_in_flight;
        g.max_deliveries = opts.max_deliveries;
        if !g.members.iter().any(|m| m.peer == peer) {
            g.members.push(Member {
                peer: peer.clone(),
                in_flight: 0,
            });
        }
        g.idle_since = None;
        let row = g.row();
        if let Some(s) = self.sessions.get_mut(&peer)
            && !s.groups.contains(&gi)
        {
            s.groups.push(gi);
        }
        let subscribed = Subscribed {
            group: name.to_string(),
        };
        let body = Bytes::from(serde_json::to_vec(&subscribed).expect("a reply always serialises"));
        if ephemeral {
            self.reply_ok(&peer, corr, body);
        } else {
            // The member receives events only after its OK, so it is ready for them.
            self.submit(
                vec![Write::UpsertGroup(row)],
                Token::Ok { peer, corr, body },
            );
        }
        self.pump(gi);
    }

    pub(in crate::broker) fn on_unsubscribe(&mut self, peer: Bytes, corr: u64, group: &str) {
        if let Some(&gi) = self.group_index.get(group) {
            self.remove_member(gi, &peer);
            if let Some(s) = self.sessions.get_mut(&peer) {
                s.groups.retain(|&g| g != gi);
            }
            self.pump(gi);
        }
        self.reply_ok(&peer, corr, Bytes::new());
    }
}
