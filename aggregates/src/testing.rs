//! Fixtures the aggregates' tests share: who acts, the ids they act on, and an aggregate's
//! state after some events.

use cqrs_es::Aggregate;
use uuid::Uuid;

use crate::{Actor, Role};

/// The state `events` lead to, as the event store loads it: each applied in turn.
pub fn after<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> A {
    let mut aggregate = A::default();
    for event in events {
        aggregate.apply(event);
    }
    aggregate
}

/// A verified member who writes the posts and comments under test.
pub const AUTHOR: Actor = Actor {
    account_id: Uuid::from_u128(10),
    role: Role::Member,
    verified: true,
};
/// A verified member who wrote none of them.
pub const OTHER: Actor = Actor {
    account_id: Uuid::from_u128(11),
    ..AUTHOR
};
pub const ADMIN: Actor = Actor {
    account_id: Uuid::from_u128(12),
    role: Role::Admin,
    verified: true,
};
pub const CATEGORY: Uuid = Uuid::from_u128(100);
pub const POST: Uuid = Uuid::from_u128(200);
