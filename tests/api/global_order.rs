//! Guarantee 2: a reader that follows the global order never skips an event whose
//! transaction commits late with a lower position.

use std::collections::HashMap;
use std::sync::Arc;

use aggregates::post::Post;
use board::personal_data::Vault;
use board::store::reader::{read_after, Checkpoint, Filter, ReadAhead, RecordedEvent};
use board::store::{GroupCommit, SealingRepository};
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::common::TestApp;

async fn insert_event(executor: impl sqlx::PgExecutor<'_>, aggregate_id: &str) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata)
         VALUES ('test', $1, 1, 'Happened', '1.0', $2, '{}')",
    )
    .bind(aggregate_id)
    .bind(json!({ "Happened": {} }))
    .execute(executor)
    .await
    .unwrap();
}

/// Reads until `want` events are visible. Other tests' transactions on the same server
/// can hold the horizon back for a moment; they never move it forward.
async fn read_until(pool: &PgPool, want: usize) -> Vec<RecordedEvent> {
    for _ in 0..600 {
        let events = read_after(pool, Checkpoint::default(), 100).await.unwrap();
        if events.len() >= want {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {want} events became readable");
}

#[tokio::test]
async fn the_reader_waits_for_a_transaction_that_commits_late() {
    let app = TestApp::spawn().await;
    let pool = &app.pool;

    // `early` takes its position first and stays open; `late` commits after it.
    let mut early = pool.begin().await.unwrap();
    insert_event(&mut *early, "early").await;
    insert_event(pool, "late").await;

    // While `early` is open the reader must not pass it: it returns nothing at all,
    // even though `late` is committed.
    let while_open = read_after(pool, Checkpoint::default(), 100).await.unwrap();
    assert!(
        while_open.is_empty(),
        "read past an open transaction: {while_open:?}"
    );

    early.commit().await.unwrap();
    let events = read_until(pool, 2).await;
    let ids: Vec<_> = events.iter().map(|e| e.aggregate_id.as_str()).collect();
    assert_eq!(ids, ["early", "late"]);
    assert!(events[0].checkpoint < events[1].checkpoint);
}

#[tokio::test]
async fn a_later_transaction_with_a_lower_position_is_still_read_after_the_checkpoint() {
    // The case a position-only reader gets wrong: `first` takes a transaction id, then
    // `second` takes a lower position... here: `a` writes position p and stays open,
    // `b` writes p+1 and commits, the reader checkpoints, then `a` commits.
    let app = TestApp::spawn().await;
    let pool = &app.pool;
    let mut a = pool.begin().await.unwrap();
    insert_event(&mut *a, "a").await;
    insert_event(pool, "b").await;
    let seen = read_after(pool, Checkpoint::default(), 100).await.unwrap();
    let checkpoint = seen.last().map_or(Checkpoint::default(), |e| e.checkpoint);
    a.commit().await.unwrap();

    let mut after = Vec::new();
    for _ in 0..600 {
        after = read_after(pool, checkpoint, 100).await.unwrap();
        if seen.len() + after.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut all: Vec<_> = seen
        .iter()
        .chain(&after)
        .map(|e| e.aggregate_id.clone())
        .collect();
    all.sort();
    assert_eq!(all, ["a", "b"], "an event was skipped");
}

#[tokio::test]
async fn events_carry_position_commit_time_and_aggregate_order() {
    let app = TestApp::spawn().await;
    app.member("ann@example.com", "ann").await;
    let events = read_until(&app.pool, 2).await;
    assert_eq!(events[0].event_type, "AccountRegistered");
    assert_eq!(events[1].event_type, "AccountVerified");
    assert_eq!((events[0].sequence, events[1].sequence), (1, 2));
    assert!(events[0].global_position() < events[1].global_position());
    assert!(events[0].recorded_at <= events[1].recorded_at);
}

#[tokio::test]
async fn transaction_ids_order_as_numbers_not_as_text() {
    // Transaction 9 wrote before transaction 10. Sorted as text, "10" would come first.
    let app = TestApp::spawn().await;
    for (aggregate_id, transaction_id) in [("ten", "10"), ("nine", "9")] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                                 payload, metadata, transaction_id)
             VALUES ('test', $1, 1, 'Happened', '1.0', '{\"Happened\": {}}', '{}', $2::text::xid8)",
        )
        .bind(aggregate_id)
        .bind(transaction_id)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let events = read_after(&app.pool, Checkpoint::default(), 100)
        .await
        .unwrap();
    let order: Vec<_> = events.iter().map(|e| e.aggregate_id.as_str()).collect();
    assert_eq!(order, ["nine", "ten"]);
}

/// The relay and the live feed are woken once a command has committed: the writing
/// process sends `NOTIFY board_events` after the commit (`store::CommitSignal`), no longer
/// a trigger inside the transaction. Without it they would only look every 200 ms.
#[tokio::test]
async fn a_committed_command_wakes_the_readers_of_the_store() {
    let app = TestApp::spawn().await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&app.pool)
        .await
        .unwrap();
    listener.listen(board::store::EVENTS_CHANNEL).await.unwrap();
    app.admin().await;
    // Bounded only so that a missing notification fails instead of hanging.
    let woken = tokio::time::timeout(crate::sse_client::HANG, listener.recv()).await;
    assert!(
        matches!(woken, Ok(Ok(_))),
        "no notification after a command committed: {woken:?}"
    );
}

/// A command's events as cqrs-es numbers them, for the event store's `persist`.
fn numbered(post: &str, sequences: std::ops::RangeInclusive<usize>) -> Vec<SerializedEvent> {
    sequences
        .map(|sequence| SerializedEvent {
            aggregate_id: post.to_string(),
            sequence,
            aggregate_type: "post".to_string(),
            event_type: "PostEdited".to_string(),
            event_version: "1.0".to_string(),
            payload: json!({ "PostEdited": { "title": format!("edit {sequence}") } }),
            metadata: json!({}),
        })
        .collect()
}

#[tokio::test]
async fn a_commands_events_are_stored_in_order_all_or_none() {
    let app = TestApp::spawn().await;
    let store = repository(&app.pool);
    let post = uuid::Uuid::now_v7().to_string();
    let stored = || async {
        sqlx::query_as::<_, (i64,)>(
            "SELECT sequence FROM events WHERE aggregate_id = $1 ORDER BY global_position",
        )
        .bind(&post)
        .fetch_all(&app.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(sequence,)| sequence)
        .collect::<Vec<_>>()
    };

    // Three events of one command: stored together, positioned in the command's order.
    store
        .persist::<Post>(&numbered(&post, 1..=3), None)
        .await
        .unwrap();
    assert_eq!(stored().await, [1, 2, 3]);

    // A command decided on version 2 lost the race: its 4th event is new, its 3rd
    // clashes with the stored one. Nothing of it is stored, and it reads as a conflict.
    let error = store
        .persist::<Post>(&numbered(&post, 3..=4), None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, PersistenceError::OptimisticLockError),
        "{error:?}"
    );
    assert_eq!(stored().await, [1, 2, 3]);
}

fn repository(pool: &PgPool) -> SealingRepository {
    SealingRepository::new(
        pool.clone(),
        Vault::new(pool.clone()),
        GroupCommit::new(pool.clone()),
    )
}

/// The stored events of `posts`, in global order: (post, sequence, transaction id).
async fn stored_in_order(pool: &PgPool, posts: &[&str]) -> Vec<(String, i64, String)> {
    sqlx::query_as(
        "SELECT aggregate_id, sequence, transaction_id::text FROM events
          WHERE aggregate_id = ANY($1) ORDER BY global_position",
    )
    .bind(posts)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Persists each of `commands` at once; their verdicts, in the same order.
async fn persist_together(
    store: &SealingRepository,
    commands: &[Vec<SerializedEvent>],
) -> Vec<Result<(), PersistenceError>> {
    futures::future::join_all(
        commands
            .iter()
            .map(|events| store.persist::<Post>(events, None)),
    )
    .await
}

/// Post ids that sort in the order of `prefixes`, unique to the test.
fn ids<const N: usize>(prefixes: [&str; N]) -> [String; N] {
    prefixes.map(|prefix| format!("{prefix}-{}", uuid::Uuid::now_v7()))
}

#[tokio::test]
async fn commands_written_together_commit_together_ordered_by_aggregate() {
    let app = TestApp::spawn().await;
    let store = repository(&app.pool);
    let [a, b, c] = ids(["a", "b", "c"]);
    // Sent together: the test's runtime has one thread, so the writer first runs once all
    // of them wait, and takes them in one batch.
    let commands = [
        numbered(&c, 1..=1),
        numbered(&a, 1..=2),
        numbered(&b, 1..=1),
    ];
    let verdicts = persist_together(&store, &commands).await;
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    let stored = stored_in_order(&app.pool, &[&a, &b, &c]).await;
    let order: Vec<(&str, i64)> = stored.iter().map(|(p, s, _)| (p.as_str(), *s)).collect();
    assert_eq!(
        order,
        [
            (a.as_str(), 1),
            (a.as_str(), 2),
            (b.as_str(), 1),
            (c.as_str(), 1)
        ],
        "ordered by aggregate, each command's events in its own order"
    );
    assert!(
        stored.iter().all(|(_, _, txid)| *txid == stored[0].2),
        "one commit for the batch: {stored:?}"
    );
}

#[tokio::test]
async fn a_refused_batch_is_written_again_command_by_command() {
    let app = TestApp::spawn().await;
    let store = repository(&app.pool);
    let [x, y, z] = ids(["x", "y", "z"]);
    // Sent together. The second command on x waits for the next batch, with z: two
    // batches in flight, [x 1-2, y] and [x 2-3, z]. Both write x's sequence 2, so the one
    // that reaches PostgreSQL second is refused, and each of its commands is written
    // again on its own: its x command loses, its partner is stored all the same. Which
    // batch comes first is the scheduler's choice; the test holds either way.
    let commands = [
        numbered(&x, 1..=2),
        numbered(&y, 1..=1),
        numbered(&x, 2..=3),
        numbered(&z, 1..=1),
    ];
    let verdicts = persist_together(&store, &commands).await;
    assert!(verdicts[1].is_ok() && verdicts[3].is_ok(), "{verdicts:?}");
    let (winner, partner, loser_partner) = match (&verdicts[0], &verdicts[2]) {
        (Ok(()), Err(PersistenceError::OptimisticLockError)) => (1..=2, &y, &z),
        (Err(PersistenceError::OptimisticLockError), Ok(())) => (2..=3, &z, &y),
        _ => panic!("one command on x must win and the other lose: {verdicts:?}"),
    };
    let stored = stored_in_order(&app.pool, &[&x, &y, &z]).await;
    let of = |post: &str| -> Vec<&(String, i64, String)> {
        stored.iter().filter(|(p, _, _)| p == post).collect()
    };
    let x_sequences: Vec<i64> = of(&x).iter().map(|(_, s, _)| *s).collect();
    assert_eq!(x_sequences, winner.map(|s| s as i64).collect::<Vec<_>>());
    let (x_txid, partner_txid, loser_partner_txid) =
        (&of(&x)[0].2, &of(partner)[0].2, &of(loser_partner)[0].2);
    assert_eq!(
        x_txid, partner_txid,
        "the winning x command's batch committed whole"
    );
    assert_ne!(
        x_txid, loser_partner_txid,
        "the refused batch's other command was written on its own"
    );
}

/// A pool of `size` connections to the test's event store.
async fn pool_of(app: &TestApp, size: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(size)
        .connect_with((*app.pool.connect_options()).clone())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_writers_hand_their_connection_back_once_nothing_waits() {
    let app = TestApp::spawn().await;
    // One connection in all, which the writers share: one that kept it once its batch
    // was written and nothing else waited would leave none for anyone else, and the
    // next query on the pool would fail when the pool's acquire timeout ran out.
    let pool = pool_of(&app, 1).await;
    let store = repository(&pool);
    for _ in 0..3 {
        let posts = ids(["a", "b", "c", "d", "e", "f"]);
        let commands: Vec<_> = posts.iter().map(|post| numbered(post, 1..=1)).collect();
        let verdicts = persist_together(&store, &commands).await;
        assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
        let refs: Vec<&str> = posts.iter().map(String::as_str).collect();
        assert_eq!(stored_in_order(&pool, &refs).await.len(), posts.len());
    }
    let mut connection = pool
        .acquire()
        .await
        .expect("the writers are at rest and hold no connection");
    sqlx::query("SELECT 1")
        .execute(&mut *connection)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_that_queue_behind_busy_writers_are_stored_each_once() {
    let app = TestApp::spawn().await;
    // Ten times the rows one batch takes, at once, on two threads: batches queue behind
    // the four writers, and with connections to spare in the pool a writer goes on from
    // one batch to the next on the connection it has (ten times in a run seen with a
    // print in the writer), then hands it back when none is left waiting.
    let pool = pool_of(&app, 8).await;
    let store = Arc::new(repository(&pool));
    const EVENTS: usize = 100;
    let posts: Vec<String> = (0..100)
        .map(|n| format!("p{n}-{}", uuid::Uuid::now_v7()))
        .collect();
    let writes = posts.iter().map(|post| {
        let (store, events) = (store.clone(), numbered(post, 1..=EVENTS));
        tokio::spawn(async move { store.persist::<Post>(&events, None).await })
    });
    for verdict in futures::future::join_all(writes).await {
        verdict.unwrap().unwrap();
    }
    let refs: Vec<&str> = posts.iter().map(String::as_str).collect();
    let mut sequences: HashMap<String, Vec<i64>> = HashMap::new();
    for (post, sequence, _) in stored_in_order(&pool, &refs).await {
        sequences.entry(post).or_default().push(sequence);
    }
    let every: Vec<i64> = (1..=EVENTS as i64).collect();
    assert_eq!(sequences.len(), posts.len());
    assert!(sequences.values().all(|s| *s == every), "{sequences:?}");
}

/// Every page the page reader hands over, until it says the end, as positions.
async fn pages_of(pool: &PgPool, limit: i64) -> Vec<Vec<i64>> {
    let mut reader = ReadAhead::start(pool, Filter::default(), Checkpoint::default(), limit);
    let mut pages = Vec::new();
    loop {
        let page = reader.next_page().await.unwrap();
        if page.is_empty() {
            return pages;
        }
        pages.push(page.iter().map(RecordedEvent::global_position).collect());
    }
}

#[tokio::test]
async fn the_page_reader_hands_over_every_event_once_in_order_across_its_queries() {
    let app = TestApp::spawn().await;
    for n in 0..50 {
        insert_event(&app.pool, &format!("event-{n}")).await;
    }
    let stored: Vec<i64> = read_until(&app.pool, 50)
        .await
        .iter()
        .map(RecordedEvent::global_position)
        .collect();
    // Pages of 3: each query reads 24 events, so 50 events cross two query boundaries,
    // one of them inside a page's worth.
    let pages = pages_of(&app.pool, 3).await;
    assert!(pages.iter().all(|page| page.len() <= 3), "{pages:?}");
    assert_eq!(pages.concat(), stored);
}

#[tokio::test]
async fn the_page_reader_leaves_the_pool_to_its_caller() {
    let app = TestApp::spawn().await;
    for n in 0..20 {
        insert_event(&app.pool, &format!("event-{n}")).await;
    }
    read_until(&app.pool, 20).await;
    // A pool of one connection, as EVENT_STORE_POOL_SIZE=1 gives. The timeout turns the
    // wait for a connection the reader kept into a failure instead of a hang.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with((*app.pool.connect_options()).clone())
        .await
        .unwrap();
    let mut reader = ReadAhead::start(&pool, Filter::default(), Checkpoint::default(), 2);
    let mut read = reader.next_page().await.unwrap().len();
    // The reader is now in the middle of its first query, waiting for this caller to take
    // a page; the caller needs the pool (as the export's vault does).
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
    loop {
        let page = reader.next_page().await.unwrap();
        if page.is_empty() {
            break;
        }
        read += page.len();
    }
    assert_eq!(read, 20);
}
