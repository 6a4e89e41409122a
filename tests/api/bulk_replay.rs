//! The replay of rebuilds and `verify` (`fold::Bulk`: rows kept in memory across batches,
//! written back in the background, read again only when written before) leaves exactly
//! the tables the live projector's fold does, batch by batch with locks.

use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use sqlx::MySqlPool;
use uuid::Uuid;

use projections::fold::{self, Bulk};
use projections::{quarantine, snapshot, Envelope};

use crate::pipeline::fresh_read_database;

fn envelope(
    aggregate_type: &str,
    id: Uuid,
    sequence: i64,
    event: &str,
    payload: Value,
) -> Envelope {
    let id = id.to_string();
    Envelope {
        event_id: Envelope::event_id_for(aggregate_type, &id, sequence),
        global_position: 0,
        transaction_id: 0,
        aggregate_type: aggregate_type.to_string(),
        aggregate_id: id,
        sequence,
        event_type: event.to_string(),
        event_version: "1.0".to_string(),
        recorded_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
            + Duration::minutes(sequence),
        payload,
        metadata: json!({}),
    }
}

/// A history that crosses every path: counters moved by events of other aggregates,
/// rows touched long after they were written, a comment counted before its post
/// arrives, deletions, edits, an event that cannot be decoded and one waiting behind it.
fn history() -> Vec<Envelope> {
    let ann = Uuid::now_v7();
    let categories: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let posts: Vec<Uuid> = (0..8).map(|_| Uuid::now_v7()).collect();
    let mut events = vec![envelope(
        "account",
        ann,
        1,
        "AccountRegistered",
        json!({"email": "sealed", "nickname": "ann"}),
    )];
    for (i, category) in categories.iter().enumerate() {
        events.push(envelope(
            "category",
            *category,
            1,
            "CategoryCreated",
            json!({"name": format!("c{i}"), "description": "", "created_by": ann}),
        ));
    }
    // The last post's first comment arrives before the post itself.
    let early = Uuid::now_v7();
    events.push(envelope(
        "comment",
        early,
        1,
        "CommentAdded",
        json!({"post_id": posts[7], "author_id": ann, "content": "early"}),
    ));
    let mut versions = vec![0i64; posts.len()];
    for (i, post) in posts.iter().enumerate() {
        versions[i] = 1;
        events.push(envelope("post", *post, 1, "PostCreated",
            json!({"category_id": categories[i % 3], "author_id": ann, "title": format!("p{i}"), "content": "x"})));
    }
    let mut comments = Vec::new();
    for n in 0..30 {
        let comment = Uuid::now_v7();
        events.push(envelope("comment", comment, 1, "CommentAdded",
            json!({"post_id": posts[n % posts.len()], "author_id": ann, "content": format!("c{n}")})));
        comments.push(comment);
        if n % 4 == 0 {
            let i = (n * 3) % posts.len();
            versions[i] += 1;
            events.push(envelope(
                "post",
                posts[i],
                versions[i],
                "PostEdited",
                json!({"title": format!("edit {n}")}),
            ));
        }
    }
    for comment in comments.iter().step_by(7).chain([&early]) {
        events.push(envelope(
            "comment",
            *comment,
            2,
            "CommentDeleted",
            json!({"deleted_by": ann}),
        ));
    }
    for i in [1, 4] {
        versions[i] += 1;
        events.push(envelope(
            "post",
            posts[i],
            versions[i],
            "PostDeleted",
            json!({"deleted_by": ann}),
        ));
    }
    // Post 2: an event no reader can decode, then one that waits behind it.
    versions[2] += 1;
    events.push(envelope(
        "post",
        posts[2],
        versions[2],
        "PostEdited",
        json!({"title": 42}),
    ));
    events.push(envelope(
        "post",
        posts[2],
        versions[2] + 1,
        "PostEdited",
        json!({"title": "after"}),
    ));
    events
}

async fn fresh() -> MySqlPool {
    MySqlPool::connect(&fresh_read_database().await)
        .await
        .unwrap()
}

/// The view rows and the quarantine, comparable.
async fn tables(pool: &MySqlPool) -> (snapshot::Snapshot, Vec<String>) {
    let quarantined = quarantine::list(pool, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e.aggregate_id, e.sequence, e.event_type, e.reason
            )
        })
        .collect();
    (snapshot::take(pool).await.unwrap(), quarantined)
}

#[tokio::test]
async fn a_bulk_replay_leaves_the_tables_the_live_fold_leaves() {
    let events = history();

    // The live projector's way: a transaction per batch, rows locked, written back each time.
    let live = fresh().await;
    for batch in events.chunks(5) {
        let mut tx = live.begin().await.unwrap();
        fold::apply_batch(&mut tx, batch).await.unwrap();
        tx.commit().await.unwrap();
    }
    let expected = tables(&live).await;
    assert_eq!(expected.1.len(), 2, "{:?}", expected.1);
    assert!(expected.0["posts_view"].len() >= 8);

    // All in memory, written once at the end.
    let whole = fresh().await;
    let mut bulk = Bulk::on_empty_tables(whole.clone());
    bulk.apply(&events).await.unwrap();
    bulk.finish().await.unwrap();
    assert_eq!(tables(&whole).await, expected);

    // One event per batch, and memory for only two rows: written back after nearly every
    // event, rows read again and again from the tables or from a write still under way.
    let tight = fresh().await;
    let mut bulk = Bulk::on_empty_tables(tight.clone()).with_max_rows(2);
    for event in events.chunks(1) {
        bulk.apply(event).await.unwrap();
    }
    bulk.finish().await.unwrap();
    assert_eq!(tables(&tight).await, expected);
}
