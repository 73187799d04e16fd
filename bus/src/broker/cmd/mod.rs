//! One module per request of the bus protocol, the way mini-redis splits its commands:
//! each reads what its request carries, applies it to the [`Core`](super::core::Core)
//! and answers the peer.

mod ack;
mod dead_letters;
mod discard;
mod drop_group;
mod hello;
mod publish;
mod replay;
mod rewind;
mod stats;
mod subscribe;

pub(super) use dead_letters::DeadLettersJob;
pub(super) use replay::ReplayJob;
pub(super) use stats::StatsJob;
