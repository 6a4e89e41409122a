//! Faults on the read side: killed relays, redelivered batches, split consumers, MySQL
//! going away. After each, the live read model must equal one rebuilt from the store.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use tokio::sync::watch;

use board::projector::Projector;

use crate::common::Member;
use crate::pipeline::Pipeline;
use crate::proxy::Proxy;

/// Sends commands (posts, edits, comments) until `stop`; returns how many were accepted.
pub fn keep_writing(
    pipeline: &Pipeline,
    author: Member,
    category: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let app = pipeline.app.clone();
    tokio::spawn(async move {
        let mut accepted = 0;
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            let res = app
                .post(&format!("/board/categories/{category}/posts"))
                .bearer(&author.token)
                .json(json!({ "title": format!("Post {i}"), "content": "load" }))
                .send()
                .await;
            assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
            let post = res.json()["postId"].as_str().unwrap().to_string();
            let edit = app
                .patch(&format!("/board/posts/{post}"))
                .bearer(&author.token)
                .json(json!({ "content": "edited" }))
                .send()
                .await;
            assert_eq!(edit.status, StatusCode::OK, "{}", edit.text());
            let comment = app
                .post(&format!("/board/posts/{post}/comments"))
                .bearer(&author.token)
                .json(json!({ "content": "first" }))
                .send()
                .await;
            assert_eq!(comment.status, StatusCode::CREATED, "{}", comment.text());
            if i % 3 == 0 {
                let delete = app
                    .delete(&format!("/board/posts/{post}"))
                    .bearer(&author.token)
                    .send()
                    .await;
                assert_eq!(delete.status, StatusCode::NO_CONTENT);
                accepted += 1;
            }
            accepted += 3;
        }
        accepted
    })
}

async fn seeded(pipeline: &Pipeline) -> (Member, String) {
    let admin = pipeline.app.admin().await;
    let category = pipeline.app.category(&admin, "Load").await;
    (admin, category)
}

#[tokio::test]
async fn killing_the_relay_process_mid_stream_loses_nothing_and_keeps_order() {
    let pipeline = Pipeline::new(3).await;
    let (author, category) = seeded(&pipeline).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(&pipeline, author, category, stop.clone());

    let first = pipeline.spawn_process("relay");
    // A second relay started now must wait for the first, then take over.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let standby = pipeline.spawn_process("relay");
    pipeline.wait_until_relayed(40).await;
    // Two relay processes, one lock holder: the standby is waiting, not publishing.
    let holders = relay_lock_sessions(&pipeline).await;
    assert_eq!(holders.len(), 1, "exactly one relay is active");
    first.kill(); // SIGKILL, mid-stream: the writer is still writing
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    assert!(writer.await.unwrap() > 0);

    let stored = pipeline.stored_events().await;
    pipeline.wait_until_relayed(stored).await;
    drop(standby);

    assert_every_event_published_in_order(&pipeline, stored).await;
}

/// Every one of the `stored` events is on the topic (some perhaps twice, as a relay that
/// restarts may publish them), and each aggregate's first copies come in sequence order.
async fn assert_every_event_published_in_order(pipeline: &Pipeline, stored: i64) {
    let envelopes = pipeline.read_topic(stored as usize).await;
    let mut first_seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for envelope in &envelopes {
        if seen.insert((envelope.aggregate_id.clone(), envelope.sequence)) {
            first_seen
                .entry(envelope.aggregate_id.clone())
                .or_default()
                .push(envelope.sequence);
        }
    }
    assert_eq!(
        seen.len() as i64,
        stored,
        "every stored event reached Kafka"
    );
    for (aggregate, sequences) in first_seen {
        let expected: Vec<i64> = (1..=sequences.len() as i64).collect();
        assert_eq!(sequences, expected, "order of aggregate {aggregate}");
    }
}

/// The sessions holding an advisory lock in this test's event store: the active relay's.
async fn relay_lock_sessions(pipeline: &Pipeline) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
          WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
    )
    .fetch_all(&pipeline.app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_relay_whose_lock_session_is_cut_takes_the_lock_again_and_loses_nothing() {
    // The relay's process lives on, but the session that holds its lock (and on which it
    // reads and records its checkpoint) is ended by the server: an operator's
    // pg_terminate_backend, a network cut. It must notice at its next statement, take the
    // lock again on a new session, and publish everything, in order.
    let pipeline = Pipeline::new(3).await;
    let (author, category) = seeded(&pipeline).await;
    let _relay = pipeline.start_relay();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(&pipeline, author, category, stop.clone());
    pipeline.wait_until_relayed(40).await;

    let before = relay_lock_sessions(&pipeline).await;
    assert_eq!(before.len(), 1, "one relay holds the lock");
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(before[0])
        .fetch_one(&pipeline.app.pool)
        .await
        .unwrap();
    assert!(ended, "the lock's session was ended");
    // Commands go on while the relay has no lock; they must be published once it has.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    assert!(writer.await.unwrap() > 0);

    let stored = pipeline.stored_events().await;
    pipeline.wait_until_relayed(stored).await;
    let after = relay_lock_sessions(&pipeline).await;
    assert_eq!(after.len(), 1, "the relay holds the lock again");
    assert_ne!(after, before, "on a new session");

    assert_every_event_published_in_order(&pipeline, stored).await;
}

#[tokio::test]
async fn a_redelivered_batch_changes_nothing() {
    // A projector whose progress is lost reads the batch again. One that starts with no
    // progress at all gets every event again: the worst case.
    let pipeline = Pipeline::new(2).await;
    let _relay = pipeline.start_relay();
    let (author, category) = seeded(&pipeline).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(&pipeline, author, category, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    {
        let _projector = pipeline.start_projector();
        pipeline.converged().await;
    }
    let before: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition_id, last_position FROM projection_progress ORDER BY partition_id",
    )
    .fetch_all(&pipeline.read_pool)
    .await
    .unwrap();

    sqlx::query("DELETE FROM projection_progress")
        .execute(&pipeline.read_pool)
        .await
        .unwrap();
    let (stop_again, stopped) = watch::channel(false);
    let again = Projector::new(
        pipeline.app.state.read_pool.clone(),
        pipeline.app.pool.clone(),
        pipeline.app.state.config.kafka(),
        pipeline.group.clone(),
    )
    .with_member("redelivery");
    let task = tokio::spawn(again.run(stopped));
    // Wait until the second projector has gone through every partition to its end.
    let mut done = false;
    for _ in 0..600 {
        let now: Vec<(i32, i64, String)> = sqlx::query_as(
            "SELECT partition_id, last_position, updated_by FROM projection_progress ORDER BY partition_id",
        )
        .fetch_all(&pipeline.read_pool)
        .await
        .unwrap();
        done = now.len() == before.len()
            && now
                .iter()
                .zip(&before)
                .all(|(n, b)| n.2 == "redelivery" && n.1 == b.1);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done, "the second projector did not re-read every partition");
    pipeline.converged().await;
    let _ = stop_again.send(true);
    task.await.unwrap();
}

#[tokio::test]
async fn two_projector_processes_split_the_partitions_and_one_takes_over_when_the_other_dies() {
    let pipeline = Pipeline::new(4).await;
    let _relay = pipeline.start_relay();
    let one = pipeline.spawn_process("projector");
    let _two = pipeline.spawn_process("projector");
    let (author, category) = seeded(&pipeline).await;
    // Both members have split the partitions before most of the load arrives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(&pipeline, author.clone(), category.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    pipeline.converged().await;
    let members: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT updated_by FROM projection_progress")
            .fetch_all(&pipeline.read_pool)
            .await
            .unwrap();
    assert_eq!(members.len(), 2, "partitions were not split: {members:?}");

    // kill -9: its leases are not given back; they run out and the other member takes
    // them, from where the dead one's last committed batch left each partition.
    one.kill();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(&pipeline, author, category, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    pipeline.converged().await;
    let holders: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT holder FROM partition_leases WHERE expires_at > NOW(3)",
    )
    .fetch_all(&pipeline.read_pool)
    .await
    .unwrap();
    assert_eq!(
        holders.len(),
        1,
        "the survivor holds every partition: {holders:?}"
    );
}

#[tokio::test]
async fn mysql_going_away_under_load_loses_nothing() {
    let target: std::net::SocketAddr = "127.0.0.1:3306".parse().unwrap();
    let proxy = Proxy::start(target).await;
    let read_url = crate::pipeline::fresh_read_database().await;
    let via_proxy = read_url.replace("127.0.0.1:3306", &proxy.addr.to_string());
    let pipeline = Pipeline::with_read_url_override(3, &read_url, &via_proxy).await;
    let _relay = pipeline.start_relay();
    let _projector = pipeline.start_projector();
    let (author, category) = seeded(&pipeline).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(&pipeline, author, category, stop.clone());
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.cut();
    // Commands keep being accepted (the writer asserts every answer) while MySQL is away.
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);
    assert!(writer.await.unwrap() > 0);
    pipeline.converged().await;
}

#[tokio::test]
async fn events_missing_from_the_stream_are_fetched_from_the_store() {
    // The broker lost PostCreated (a producer timed it out, or retention dropped it):
    // only the edit arrives. The projector must not apply it on a row that never saw
    // the post created, and must not skip the creation either.
    let pipeline = Pipeline::new(1).await;
    let admin = pipeline.app.admin().await;
    let category = pipeline.app.category(&admin, "Rust").await;
    let post = pipeline.app.post_in(&admin, &category).await;
    pipeline
        .app
        .patch(&format!("/board/posts/{post}"))
        .bearer(&admin.token)
        .json(json!({ "title": "Edited" }))
        .send()
        .await;
    // Events are readable once every older transaction in the cluster has ended (other
    // tests write beside this one); wait for that, or some would be left out below.
    board::store::reader::settle(&pipeline.app.pool, Duration::from_secs(30))
        .await
        .unwrap();
    let all = board::store::reader::read_after(
        &pipeline.app.pool,
        board::store::reader::Checkpoint::default(),
        1_000,
    )
    .await
    .unwrap();
    let without_creation: Vec<_> = all
        .into_iter()
        .filter(|e| e.event_type != "PostCreated")
        .collect();
    let settings = pipeline.app.state.config.kafka();
    board::kafka::ensure_topic(&settings, &pipeline.topic)
        .await
        .unwrap();
    let producer = board::kafka::producer(&settings).unwrap();
    board::kafka::publish(&producer, &pipeline.topic, &without_creation)
        .await
        .unwrap();

    let _projector = pipeline.start_projector();
    pipeline.converged().await;
    let res = pipeline
        .app
        .get(&format!("/board/posts/{post}/content"))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["title"], "Edited");
}

#[tokio::test]
async fn the_relay_refuses_events_from_ahead_of_the_servers_transaction_counter() {
    // As after a logical restore from a server whose transaction counter was further on.
    let pipeline = Pipeline::new(1).await;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata, transaction_id)
         VALUES ('test', 'restored', 1, 'Happened', '1.0', '{\"Happened\": {}}', '{}',
                 '999999999999'::xid8)",
    )
    .execute(&pipeline.app.pool)
    .await
    .unwrap();
    let _relay = pipeline.start_relay();
    let admin = pipeline.app.admin().await;
    pipeline.app.category(&admin, "Rust").await;
    // Without the check, these newer events would go out ahead of the restored one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let checkpoints: i64 = sqlx::query_scalar("SELECT count(*) FROM relay_checkpoints")
        .fetch_one(&pipeline.app.pool)
        .await
        .unwrap();
    assert_eq!(checkpoints, 0, "the relay published out of order");
}

/// A projector applies nothing of a partition whose lease another member holds, even a
/// message it has already fetched; once the lease is free again it takes the partition
/// back and applies from where the read model stood.
#[tokio::test]
async fn a_projector_applies_nothing_of_a_partition_it_no_longer_holds() {
    let pipeline = Pipeline::new(1).await;
    let _relay = pipeline.start_relay();
    let _projector = pipeline.start_projector();
    let (author, category) = seeded(&pipeline).await;
    pipeline.converged().await;

    // Another member takes the lease over (as one would after this one's had expired).
    sqlx::query(
        "UPDATE partition_leases SET holder = 'other', expires_at = NOW(3) + INTERVAL 1 HOUR
          WHERE member_group = ? AND topic = ?",
    )
    .bind(&pipeline.group)
    .bind(&pipeline.topic)
    .execute(&pipeline.read_pool)
    .await
    .unwrap();
    let post = pipeline.app.post_in(&author, &category).await;
    let stored = pipeline.stored_events().await;
    pipeline.wait_until_relayed(stored).await;
    // Longer than the projector takes to see and apply a message while it holds the lease.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let applied = projections::queries::applied_version(&pipeline.read_pool, "post", &post)
        .await
        .unwrap();
    // Version 0: the read model has not seen the post.
    assert_eq!(applied, Some(0), "applied without the partition's lease");

    sqlx::query("UPDATE partition_leases SET expires_at = NOW(3) WHERE holder = 'other'")
        .execute(&pipeline.read_pool)
        .await
        .unwrap();
    pipeline.converged().await;
}
