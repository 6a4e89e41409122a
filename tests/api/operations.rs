//! The operators' and analysts' command line, run as the real `board` binary.

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use sqlx::MySqlPool;

use projections::{snapshot, Envelope};

use crate::faults::keep_writing;
use crate::pipeline::{Pipeline, Process};
use crate::private_services::{free_port, Daemon, Workdir};

/// Writes `count` post events straight into the store (valid shapes, `bytes` of content
/// each), far faster than through the API.
async fn bulk_events(pipeline: &Pipeline, count: i64, bytes: usize) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'post', gen_random_uuid()::text, 1, 'PostCreated', '1.0',
                jsonb_build_object('PostCreated', jsonb_build_object(
                    'category_id', gen_random_uuid(), 'author_id', gen_random_uuid(),
                    'title', 'Post ' || n, 'content', repeat('x', $2))),
                '{}'::jsonb
           FROM generate_series(1, $1) AS n",
    )
    .bind(count)
    .bind(bytes as i32)
    .execute(&pipeline.app.pool)
    .await
    .unwrap();
}

async fn shadow_exists(pipeline: &Pipeline) -> bool {
    let name = board::databases::database_name(&pipeline.read_url).unwrap();
    let found: Option<String> = sqlx::query_scalar(
        "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata WHERE schema_name = ?",
    )
    .bind(format!("{name}__rebuild"))
    .fetch_optional(&pipeline.read_pool)
    .await
    .unwrap();
    found.is_some()
}

#[tokio::test]
async fn status_reports_positions_and_lag_as_json() {
    let pipeline = Pipeline::new(2).await;
    let relay = pipeline.start_relay();
    let _projector = pipeline.start_projector();
    let admin = pipeline.app.admin().await;
    pipeline.app.category(&admin, "Rust").await;
    let stored = pipeline.stored_events().await;
    pipeline.wait_until_relayed(stored).await;
    pipeline.converged().await;
    let (code, out) = pipeline
        .run_board(&["projections", "status", "--json"])
        .await;
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["head"]["events"], stored);
    assert_eq!(status["relays"][0]["lagEvents"], 0);
    let partitions = status["projectors"].as_array().unwrap();
    assert_eq!(partitions.len(), 2);
    assert!(partitions.iter().all(|p| p["lagEvents"] == 0), "{status:#}");
    let (code, table) = pipeline.run_board(&["projections", "status"]).await;
    assert_eq!(code, 0);
    assert!(table.contains("LAG EVENTS"), "{table}");

    // With the relay stopped, what is stored after its checkpoint is its lag, in events
    // and in the age of the first of them.
    relay.stop().await;
    pipeline.app.category(&admin, "Go").await;
    pipeline.app.category(&admin, "Zig").await;
    let behind = pipeline.stored_events().await - stored;
    assert!(behind >= 2, "{behind}");
    let (code, out) = pipeline
        .run_board(&["projections", "status", "--json"])
        .await;
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["relays"][0]["lagEvents"], behind, "{status:#}");
    let age = status["relays"][0]["lagSeconds"].as_f64().unwrap();
    assert!(age > 0.0, "{status:#}");
}

#[tokio::test]
async fn an_interrupted_rebuild_leaves_the_live_read_model_untouched_and_a_rerun_completes() {
    let pipeline = Pipeline::new(2).await;
    pipeline.seed_and_project().await;
    bulk_events(&pipeline, 30_000, 10).await;
    let before = snapshot::take(&pipeline.read_pool).await.unwrap();

    let stored = pipeline.stored_events().await as f64;
    // Killed on drop, should an assertion below fail while it runs.
    let mut rebuild = Process(
        pipeline
            .board(&["projections", "rebuild", "--all"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Midway, once the server's metrics show progress (the rebuild is another process).
    let mut during = rebuild_metrics(&pipeline).await;
    while during.applied == 0.0 {
        if let Some(status) = rebuild.0.try_wait().unwrap() {
            panic!("the rebuild ended ({status}) before the metrics showed any progress");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        during = rebuild_metrics(&pipeline).await;
    }
    assert_eq!(during.running, 1.0, "{during:?}");
    assert!(during.applied < during.total, "{during:?}");
    assert_eq!(during.total, stored, "{during:?}");
    let status = rebuild.signal("INT").await;
    assert_eq!(status.code(), Some(130), "interrupted before the swap");
    assert!(
        !shadow_exists(&pipeline).await,
        "the shadow database is dropped"
    );
    assert_eq!(snapshot::take(&pipeline.read_pool).await.unwrap(), before);
    pipeline.app.outwait_kept_figures().await;
    assert_eq!(rebuild_metrics(&pipeline).await.running, 0.0);
    let res = pipeline.app.get("/board/categories").send().await;
    assert_eq!(res.status, StatusCode::OK);

    let (code, out) = pipeline
        .run_board(&["projections", "rebuild", "read-models"])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("events/s"), "{out}");
    let posts: i64 = sqlx::query_scalar("SELECT count(*) FROM posts_view")
        .fetch_one(&pipeline.read_pool)
        .await
        .unwrap();
    assert_eq!(posts, 30_000);
    pipeline.app.outwait_kept_figures().await;
    let after = rebuild_metrics(&pipeline).await;
    assert_eq!(
        (after.running, after.applied, after.total),
        (0.0, stored, stored),
        "{after:?}"
    );
}

#[derive(Debug)]
struct RebuildMetrics {
    running: f64,
    applied: f64,
    total: f64,
}

/// The read models' rebuild, as the server's `/metrics` reports it (zeros before any).
async fn rebuild_metrics(pipeline: &Pipeline) -> RebuildMetrics {
    let text = pipeline.app.get("/metrics").send().await.text();
    let gauge = |name: &str| {
        let prefix = format!("{name}{{projection=\"read-models\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    };
    RebuildMetrics {
        running: gauge("board_rebuild_running"),
        applied: gauge("board_rebuild_events_applied"),
        total: gauge("board_rebuild_events_total"),
    }
}

#[tokio::test]
async fn a_rebuild_while_commands_arrive_ends_equal_to_the_live_model() {
    let pipeline = Pipeline::new(3).await;
    let _relay = pipeline.start_relay();
    let _projector = pipeline.start_projector();
    let admin = pipeline.app.admin().await;
    let category = pipeline.app.category(&admin, "Load").await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(&pipeline, admin, category, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rebuild = pipeline.run_board(&["projections", "rebuild", "--all"]);
    let queries = async {
        // The query API keeps answering throughout.
        for _ in 0..20 {
            let res = pipeline.app.get("/board/categories").send().await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let ((code, out), ()) = tokio::join!(rebuild, queries);
    assert_eq!(code, 0, "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let stored = pipeline.stored_events().await;
    pipeline.wait_until_relayed(stored).await;
    let (code, out) = pipeline
        .run_board(&["projections", "verify", "--wait", "60s"])
        .await;
    assert_eq!(code, 0, "verify found differences:\n{out}");
    assert!(out.contains("equal"), "{out}");
}

#[tokio::test]
async fn verify_prints_differences_and_exits_non_zero() {
    let pipeline = Pipeline::new(1).await;
    pipeline.seed_and_project().await;
    sqlx::query("UPDATE categories_view SET post_count = 42")
        .execute(&pipeline.read_pool)
        .await
        .unwrap();
    let (code, out) = pipeline
        .run_board(&["projections", "verify", "--wait", "0s"])
        .await;
    assert_eq!(code, 1);
    assert!(
        out.contains("categories_view: - ") && out.contains("|42|"),
        "{out}"
    );
}

#[tokio::test]
async fn a_second_rebuild_or_verify_of_one_read_model_is_refused_while_the_first_runs() {
    let pipeline = Pipeline::new(1).await;
    let live = board::databases::database_name(&pipeline.read_url).unwrap();
    // What a running rebuild and a running verify hold.
    let mut running = <sqlx::MySqlConnection as sqlx::Connection>::connect(&pipeline.read_url)
        .await
        .unwrap();
    for name in [format!("{live}__rebuild"), format!("{live}__verify")] {
        let taken: i64 = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
            .bind(&name)
            .fetch_one(&mut running)
            .await
            .unwrap();
        assert_eq!(taken, 1);
    }
    for args in [
        &["projections", "rebuild", "--all"][..],
        &["projections", "verify", "--wait", "0s"][..],
    ] {
        let output = pipeline.board(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("another rebuild or verify"),
            "{args:?}: {stderr}"
        );
    }
    drop(running);
    let (code, out) = pipeline
        .run_board(&["projections", "verify", "--wait", "0s"])
        .await;
    assert_eq!(code, 0, "{out}");
}

/// Peak resident memory of a process that runs to completion, in KiB.
async fn peak_rss_kib(mut child: std::process::Child) -> (i32, u64) {
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(hwm) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                let kib: u64 = hwm.split_whitespace().nth(1).unwrap().parse().unwrap();
                peak = peak.max(kib);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code().unwrap_or(-1), peak);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn export_streams_a_large_store_in_bounded_memory() {
    let pipeline = Pipeline::new(1).await;
    // The same export on a store ten times larger: 6,000 then 60,000 events of 2 KiB
    // (about 120 MiB of payload). Memory follows the page size, not the store: what it
    // needs beyond the process's own (binary, pools, runtime) must not grow with it.
    bulk_events(&pipeline, 6_000, 2_048).await;
    let (small_peak, small_bytes) = export_peak(&pipeline, 6_000).await;
    bulk_events(&pipeline, 54_000, 2_048).await;
    let (peak_kib, exported) = export_peak(&pipeline, 60_000).await;
    assert!(exported > 120 * 1024 * 1024, "exported {exported} bytes");
    let grown_kib = peak_kib.saturating_sub(small_peak);
    let grown_bytes = exported - small_bytes;
    assert!(
        grown_kib * 1024 < grown_bytes / 10,
        "peak RSS {small_peak} KiB for {small_bytes} bytes, {peak_kib} KiB for {exported} bytes"
    );
}

/// Runs `board events export` of the whole store; its peak RSS (KiB) and bytes written.
async fn export_peak(pipeline: &Pipeline, events: usize) -> (u64, u64) {
    let out = std::env::temp_dir().join(format!("board-export-{}.jsonl", uuid::Uuid::new_v4()));
    let child = pipeline
        .board(&["events", "export", "--output", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (code, peak_kib) = peak_rss_kib(child).await;
    assert_eq!(code, 0);
    let exported = std::fs::metadata(&out).unwrap().len();
    let lines =
        std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&out).unwrap()))
            .count();
    std::fs::remove_file(&out).unwrap();
    assert_eq!(lines, events);
    (peak_kib, exported)
}

/// The export copies most events' JSON as stored, without parsing it; the others (an old
/// version to raise, personal fields to open) take the path every reader takes. Both must
/// write what that path gives, the envelope of the event as read.
#[tokio::test]
async fn an_export_writes_every_event_as_its_envelope_whichever_way_it_takes() {
    let app = crate::common::TestApp::spawn().await;
    let admin = app.admin().await;
    let ann = app.member("ann@example.com", "ann").await;
    let category = app.category(&admin, "Rust").await;
    let post = app.post_in(&ann, &category).await;
    let res = app
        .patch(&format!("/board/posts/{post}"))
        .bearer(&ann.token)
        .json(json!({ "title": "Edited: \"quoted\", and \\ escaped" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    crate::live::comment(&app, &admin, &post, "Nice, really").await;
    // A comment as the first release stored it (raised from 1.0 as it is read).
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('comment', $1, 1, 'CommentAdded', '1.0', $2, '{\"requestId\": \"r-1\"}')",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(json!({ "CommentAdded": { "post_id": post, "author_id": ann.id.to_string(), "text": "Old" } }))
    .execute(&app.pool)
    .await
    .unwrap();

    let (text, count) = app.export_jsonl().await;
    let mut events = board::store::reader::read_after(&app.pool, Default::default(), 1_000)
        .await
        .unwrap();
    board::personal_data::Vault::new(app.pool.clone())
        .open_all(&mut events, board::personal_data::Reveal::Public)
        .await
        .unwrap();
    assert_eq!(count as usize, events.len());
    assert_eq!(text.lines().count(), events.len());
    for (line, event) in text.lines().zip(&events) {
        let written: Value = serde_json::from_str(line).unwrap();
        assert_eq!(written, json!(board::kafka::envelope(event)), "{line}");
        // Compact, as serde_json writes: no space after a key or between fields.
        assert!(!line.contains("\": ") && !line.contains(", \""), "{line}");
    }
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    for expected in [
        "AccountRegistered",
        "PostCreated",
        "PostEdited",
        "CommentAdded",
    ] {
        assert!(types.contains(&expected), "{types:?}");
    }
}

#[tokio::test]
async fn export_filters_and_writes_csv() {
    let pipeline = Pipeline::new(1).await;
    let ann = pipeline.app.member("ann@example.com", "ann").await;
    let (code, out) = pipeline
        .run_board(&[
            "events",
            "export",
            "--event-type",
            "AccountVerified",
            "--format",
            "csv",
        ])
        .await;
    assert_eq!(code, 0);
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][5], ann.id.to_string());
    assert_eq!(&rows[0][7], "AccountVerified");
    let (code, out) = pipeline
        .run_board(&[
            "events",
            "export",
            "--aggregate-type",
            "account",
            "--aggregate-id",
            &ann.id.to_string(),
        ])
        .await;
    assert_eq!(code, 0);
    let types: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<Envelope>(l).unwrap().event_type)
        .collect();
    assert_eq!(types, ["AccountRegistered", "AccountVerified"]);
}

#[tokio::test]
async fn a_replayed_topic_holds_every_event_once_in_order_per_aggregate() {
    let pipeline = Pipeline::new(1).await;
    let admin = pipeline.app.admin().await;
    let category = pipeline.app.category(&admin, "Rust").await;
    for _ in 0..5 {
        let post = pipeline.app.post_in(&admin, &category).await;
        pipeline
            .app
            .patch(&format!("/board/posts/{post}"))
            .bearer(&admin.token)
            .json(json!({ "title": "Edited" }))
            .send()
            .await;
    }
    let stored = pipeline.stored_events().await as usize;
    let topic = format!("{}-replay", pipeline.topic);
    let (code, _) = pipeline
        .run_board(&["events", "replay", "--topic", &topic])
        .await;
    assert_eq!(code, 0);

    // An analyst's reader of assigned partitions: it joins no group.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &pipeline.brokers)
        .set("group.id", format!("analytics-{}", uuid::Uuid::new_v4()))
        // Nothing committed, so the group is never created at the broker.
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut partitions = rdkafka::TopicPartitionList::new();
    for partition in 0..6 {
        partitions
            .add_partition_offset(&topic, partition, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let mut per_aggregate: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut ids = HashSet::new();
    for _ in 0..stored {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .expect("every replayed event arrives")
            .unwrap();
        let envelope: Envelope = serde_json::from_slice(message.payload().unwrap()).unwrap();
        assert!(
            ids.insert(envelope.event_id),
            "event {} twice",
            envelope.event_id
        );
        per_aggregate
            .entry(envelope.aggregate_id)
            .or_default()
            .push(envelope.sequence);
    }
    for (aggregate, sequences) in per_aggregate {
        let expected: Vec<i64> = (1..=sequences.len() as i64).collect();
        assert_eq!(sequences, expected, "order of {aggregate}");
    }
    // And nothing beyond them: the topic's partitions end where the events do.
    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &pipeline.brokers)
        .create()
        .unwrap();
    let total: i64 = (0..6)
        .filter_map(|p| {
            watcher
                .fetch_watermarks(&topic, p, Duration::from_secs(5))
                .ok()
        })
        .map(|(low, high)| high - low)
        .sum();
    assert_eq!(total as usize, stored);
    let (code, _) = pipeline
        .run_board(&["events", "replay", "--topic", &pipeline.topic])
        .await;
    assert_ne!(code, 0, "replaying into the live topic is refused");
}

#[tokio::test]
async fn show_travels_to_a_version_or_a_moment() {
    let pipeline = Pipeline::new(1).await;
    let admin = pipeline.app.admin().await;
    let category = pipeline.app.category(&admin, "Rust").await;
    let post = pipeline.app.post_in(&admin, &category).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    pipeline
        .app
        .patch(&format!("/board/posts/{post}"))
        .bearer(&admin.token)
        .json(json!({ "title": "Edited" }))
        .send()
        .await;
    let pipeline = &pipeline;
    let show = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out) = pipeline.run_board(&args).await;
        assert_eq!(code, 0, "{out}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let base = vec![
        "events".to_string(),
        "show".into(),
        "post".into(),
        post.clone(),
    ];
    let now = show(base.clone()).await;
    assert_eq!(now["state"]["title"], "Edited");
    assert_eq!(now["version"], 2);
    assert_eq!(now["events"].as_array().unwrap().len(), 2);
    let first = show([base.clone(), vec!["--version".into(), "1".into()]].concat()).await;
    assert_eq!(first["state"]["title"], "Hello");
    let then = show([base, vec!["--as-of".into(), between.to_rfc3339()]].concat()).await;
    assert_eq!(then["state"]["title"], "Hello");
    assert_eq!(then["version"], 1);
}

#[tokio::test]
async fn a_stored_version_1_comment_still_loads_and_projects() {
    let pipeline = Pipeline::new(1).await;
    let admin = pipeline.app.admin().await;
    let category = pipeline.app.category(&admin, "Rust").await;
    let post = pipeline.app.post_in(&admin, &category).await;
    // As the first release stored it: version 1.0, the text under `text`.
    let comment = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('comment', $1, 1, 'CommentAdded', '1.0', $2, '{}')",
    )
    .bind(&comment)
    .bind(json!({ "CommentAdded": { "post_id": post, "author_id": admin.id, "text": "from 2025" } }))
    .execute(&pipeline.app.pool)
    .await
    .unwrap();

    // Replayed into read models of its own, as a rebuild does; it becomes readable once
    // older transactions on the server have ended.
    let reference = MySqlPool::connect(&crate::pipeline::fresh_read_database().await)
        .await
        .unwrap();
    let mut bulk = projections::fold::Bulk::on_empty_tables(reference.clone());
    let mut content: Option<String> = None;
    let mut checkpoint = board::store::reader::Checkpoint::default();
    for _ in 0..600 {
        let replayed =
            board::rebuild::replay(&pipeline.app.pool, &mut bulk, checkpoint, &|_| {}, None);
        let (_, reached) = replayed.await.unwrap().unwrap();
        checkpoint = reached;
        content = sqlx::query_scalar("SELECT content FROM comments_view WHERE comment_id = ?")
            .bind(&comment)
            .fetch_optional(&reference)
            .await
            .unwrap();
        if content.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(content.as_deref(), Some("from 2025"));
    let (code, out) = pipeline
        .run_board(&["events", "export", "--aggregate-id", &comment])
        .await;
    assert_eq!(code, 0);
    let envelope: Envelope = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(envelope.event_version, "2.0");
    assert_eq!(envelope.payload["content"], "from 2025");
    // The aggregate loads it too: its author can delete it.
    let res = pipeline
        .app
        .delete(&format!("/board/comments/{comment}"))
        .bearer(&admin.token)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
}

#[tokio::test]
async fn promote_and_migrate_work_from_the_command_line() {
    let pipeline = Pipeline::new(1).await;
    let (code, _) = pipeline.run_board(&["migrate"]).await;
    assert_eq!(code, 0);
    pipeline.app.member("bob@example.com", "bob").await;
    let (code, out) = pipeline
        .run_board(&["accounts", "promote", "bob@example.com"])
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("is now an admin"), "{out}");
    let token = pipeline.app.log_in("bob@example.com").await["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let res = pipeline
        .app
        .post("/board/categories")
        .bearer(&token)
        .json(json!({ "name": "Bob's" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let (code, _) = pipeline
        .run_board(&["accounts", "promote", "nobody@example.com"])
        .await;
    assert_eq!(code, 1);
}

#[tokio::test]
async fn a_rebuild_of_large_posts_stays_under_the_packet_limit() {
    // 300 posts of 20,000 three-byte characters: 18 MB, over MariaDB's default
    // max_allowed_packet of 16 MiB if written in one statement.
    let pipeline = Pipeline::new(1).await;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'post', gen_random_uuid()::text, 1, 'PostCreated', '1.0',
                jsonb_build_object('PostCreated', jsonb_build_object(
                    'category_id', gen_random_uuid(), 'author_id', gen_random_uuid(),
                    'title', 'Big ' || n, 'content', repeat('字', 20000))),
                '{}'::jsonb
           FROM generate_series(1, 300) AS n",
    )
    .execute(&pipeline.app.pool)
    .await
    .unwrap();
    let (code, out) = pipeline
        .run_board(&["projections", "rebuild", "--all"])
        .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = pipeline
        .run_board(&["projections", "verify", "--wait", "0s"])
        .await;
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    let pipeline = Pipeline::new(1).await;
    let work = Workdir::new("board-sigterm");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let command = pipeline.board(&["--listen", &listen, "serve"]);
    let mut server = Daemon::new(
        "server",
        &command,
        work.path().join("server.log"),
        Some(port),
    );
    server.start().await;
    let status = server.stop().await;
    assert_eq!(
        status.code(),
        Some(0),
        "a clean stop exits 0:\n{}",
        server.log_tail()
    );
}

#[tokio::test]
async fn production_refuses_to_start_without_a_jwt_secret() {
    let pipeline = Pipeline::new(1).await;
    let output = pipeline
        .board(&["--environment", "production", "migrate"])
        .env_remove("JWT_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("JWT_SECRET must be set in production"),
        "{stderr}"
    );
}
