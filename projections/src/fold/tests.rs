//! The fold without a database. [`apply`] runs a batch as `apply_batch` does (decode, load
//! what the plan names and the quarantine of its aggregates, fold, write back what
//! changed), and [`retry_post`] as `retry_quarantined` does, with rows in memory standing
//! for the tables; each test states batches and the rows (and quarantine) they leave.

use std::collections::BTreeSet;

use aggregates::account::AccountEvent;
use aggregates::category::CategoryEvent;
use aggregates::comment::CommentEvent;
use aggregates::post::PostEvent;
use aggregates::{AggregateKind, Role};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::rows::{AccountRow, Aggregate, CategoryRow, CommentRow, PostRow, Rows, View};
use super::step::{check_version, VersionCheck};
use super::{decode, fold, plan, release, Applied, Gap};
use crate::Envelope;

const ANN: Uuid = Uuid::from_u128(0xa);
const RUST: Uuid = Uuid::from_u128(0xc1);
const GO: Uuid = Uuid::from_u128(0xc2);
const ZIG: Uuid = Uuid::from_u128(0xc3);
const ELM: Uuid = Uuid::from_u128(0xc4);
const POST_1: Uuid = Uuid::from_u128(0xb1);
const POST_2: Uuid = Uuid::from_u128(0xb2);
const POST_3: Uuid = Uuid::from_u128(0xb3);
const COMMENT_1: Uuid = Uuid::from_u128(0xd1);
const COMMENT_2: Uuid = Uuid::from_u128(0xd2);
const COMMENT_3: Uuid = Uuid::from_u128(0xd3);

// --- The harness -------------------------------------------------------------------------

/// Applies `events` as `apply_batch` does, with `db` standing for the tables. Returns what
/// the fold counted and the view rows written back; on a gap, writes nothing.
fn apply_and_list_writes(
    db: &mut Rows,
    events: &[Envelope],
) -> Result<(Applied, Vec<(View, String)>), Gap> {
    run(db, events, None)
}

fn apply(db: &mut Rows, events: &[Envelope]) -> Result<Applied, Gap> {
    apply_and_list_writes(db, events).map(|(applied, _)| applied)
}

/// What `retry_quarantined` does for the post `post`, given its events from the store.
fn retry_post(db: &mut Rows, post: Uuid, events: &[Envelope]) -> Result<Applied, Gap> {
    let aggregate = (AggregateKind::Post, id(post));
    run(db, events, Some(aggregate)).map(|(applied, _)| applied)
}

/// `apply_batch`'s and `retry_quarantined`'s steps, on `db`.
fn run(
    db: &mut Rows,
    events: &[Envelope],
    retried: Option<Aggregate>,
) -> Result<(Applied, Vec<(View, String)>), Gap> {
    let events = decode::batch(events);
    let mut rows = Rows::default();
    load_planned(db, &events, &mut rows);
    let mut aggregates = plan::aggregates(&events);
    aggregates.extend(retried.clone());
    rows.quarantine.load_from(&db.quarantine, &aggregates);
    if let Some(aggregate) = &retried {
        release(&mut rows, aggregate, &events);
    }
    let applied = fold(&mut rows, events)?;
    // Every test checks the plan as well: a row the fold changed without its being loaded
    // would be written back without its lock.
    assert_eq!(
        rows.not_loaded(),
        [],
        "the fold touched rows the plan did not load"
    );
    assert_eq!(
        rows.quarantine.not_loaded(),
        [],
        "the fold used the quarantine of aggregates the plan did not load it for"
    );
    Ok((applied, rows.write_into(db)))
}

/// Loads from `db` into `rows` what the plan names for `events`, view by view as `run`
/// does; returns the ids planned for each view.
fn load_planned(
    db: &Rows,
    events: &[decode::Event<'_>],
    rows: &mut Rows,
) -> Vec<(View, BTreeSet<String>)> {
    let mut planned: Vec<(View, BTreeSet<String>)> = Vec::new();
    for view in plan::LOAD_ORDER {
        let before = planned
            .last()
            .map(|(_, ids)| ids.clone())
            .unwrap_or_default();
        let ids = plan::ids_to_load(view, events, rows, &before);
        rows.load_from(db, view, &ids);
        planned.push((view, ids));
    }
    planned
}

/// Applies each batch in turn to empty tables, and returns the tables.
fn tables_after(batches: &[&[Envelope]]) -> Rows {
    let mut db = Rows::default();
    for batch in batches {
        apply(&mut db, batch).expect("no gap");
    }
    db
}

fn applied(applied: usize, duplicates: usize, skipped: usize) -> Applied {
    Applied {
        applied,
        duplicates,
        skipped,
        quarantined: 0,
    }
}

fn quarantining(applied: usize, duplicates: usize, quarantined: usize) -> Applied {
    Applied {
        quarantined,
        ..self::applied(applied, duplicates, 0)
    }
}

/// The quarantine table's rows: aggregate id, sequence and reason.
fn quarantine(db: &Rows) -> Vec<(String, i64, String)> {
    db.quarantine
        .rows()
        .iter()
        .map(|row| {
            let envelope = &row.envelope;
            (
                envelope.aggregate_id.clone(),
                envelope.sequence,
                row.reason.clone(),
            )
        })
        .collect()
}

fn id(uuid: Uuid) -> String {
    uuid.to_string()
}

fn ids<const N: usize>(uuids: [Uuid; N]) -> BTreeSet<String> {
    uuids.into_iter().map(id).collect()
}

// The rows as the tables hold them; a row they lack reads as its placeholder.

fn account_row(db: &Rows, uuid: Uuid) -> AccountRow {
    db.accounts.get(&id(uuid)).cloned().unwrap_or_default()
}

fn category_row(db: &Rows, uuid: Uuid) -> CategoryRow {
    db.categories.get(&id(uuid)).cloned().unwrap_or_default()
}

fn post_row(db: &Rows, uuid: Uuid) -> PostRow {
    db.posts.get(&id(uuid)).cloned().unwrap_or_default()
}

fn comment_row(db: &Rows, uuid: Uuid) -> CommentRow {
    db.comments.get(&id(uuid)).cloned().unwrap_or_default()
}

// --- Events, enveloped as the relay publishes them ---------------------------------------

/// When an event was recorded: minute `sequence` of a fixed day, so that the events of
/// one aggregate have times of their own, and one event the same time in every test.
fn at(sequence: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(sequence)
}

/// `event` at `sequence` of `aggregate_type` `aggregate`.
fn envelope(
    aggregate_type: &str,
    aggregate: Uuid,
    sequence: i64,
    event: impl Serialize,
) -> Envelope {
    // The aggregates' events serialize as cqrs-es stores them, `{"<EventType>": {fields}}`.
    let stored = serde_json::to_value(event).expect("an event serializes");
    let event_type = stored
        .as_object()
        .and_then(|tagged| tagged.keys().next().cloned())
        .expect("an event is tagged with its type");
    let payload = Envelope::untag(&event_type, stored);
    raw(aggregate_type, aggregate, sequence, &event_type, payload)
}

/// An envelope of any type and payload, for events the read models cannot decode.
fn raw(
    aggregate_type: &str,
    aggregate: Uuid,
    sequence: i64,
    event_type: &str,
    payload: Value,
) -> Envelope {
    Envelope {
        event_id: Envelope::event_id_for(aggregate_type, &id(aggregate), sequence),
        global_position: 0,
        transaction_id: 0,
        aggregate_type: aggregate_type.to_string(),
        aggregate_id: id(aggregate),
        sequence,
        event_type: event_type.to_string(),
        event_version: aggregates::EVENT_VERSION_1.to_string(),
        recorded_at: at(sequence),
        payload,
        metadata: json!({}),
    }
}

fn account(account: Uuid, sequence: i64, event: AccountEvent) -> Envelope {
    envelope("account", account, sequence, event)
}

fn category(category: Uuid, sequence: i64, event: CategoryEvent) -> Envelope {
    envelope("category", category, sequence, event)
}

fn post(post: Uuid, sequence: i64, event: PostEvent) -> Envelope {
    envelope("post", post, sequence, event)
}

fn comment(comment: Uuid, sequence: i64, event: CommentEvent) -> Envelope {
    envelope("comment", comment, sequence, event)
}

fn category_created(name: &str) -> CategoryEvent {
    CategoryEvent::CategoryCreated {
        name: name.to_string(),
        description: format!("about {name}"),
        created_by: ANN,
    }
}

fn post_created(category: Uuid, title: &str) -> PostEvent {
    PostEvent::PostCreated {
        category_id: category,
        author_id: ANN,
        title: title.to_string(),
        content: format!("{title}, the text"),
    }
}

fn post_edited(title: Option<&str>, content: Option<&str>) -> PostEvent {
    PostEvent::PostEdited {
        title: title.map(str::to_string),
        content: content.map(str::to_string),
    }
}

fn post_deleted() -> PostEvent {
    PostEvent::PostDeleted { deleted_by: ANN }
}

fn comment_added(post: Uuid, content: &str) -> CommentEvent {
    CommentEvent::CommentAdded {
        post_id: post,
        author_id: ANN,
        content: content.to_string(),
    }
}

fn comment_deleted() -> CommentEvent {
    CommentEvent::CommentDeleted { deleted_by: ANN }
}

// --- Version check and plan --------------------------------------------------------------

#[test]
fn the_version_check_compares_an_events_sequence_with_its_rows_version() {
    assert_eq!(check_version(0, 1), VersionCheck::Next);
    assert_eq!(check_version(4, 5), VersionCheck::Next);
    assert_eq!(check_version(4, 4), VersionCheck::Duplicate);
    assert_eq!(check_version(4, 1), VersionCheck::Duplicate);
    assert_eq!(check_version(4, 6), VersionCheck::Missing { from: 5 });
    assert_eq!(check_version(0, 3), VersionCheck::Missing { from: 1 });
}

#[test]
fn the_plan_loads_comments_then_the_posts_they_name_then_the_categories_those_name() {
    assert_eq!(
        plan::LOAD_ORDER,
        [
            View::Comments,
            View::Posts,
            View::Categories,
            View::Accounts
        ]
    );
    let db = tables_after(&[&[
        post(POST_1, 1, post_created(RUST, "one")),
        post(POST_2, 1, post_created(GO, "two")),
        comment(COMMENT_1, 1, comment_added(POST_1, "hi")),
    ]]);
    let batch = [
        // Names neither its post nor that post's category: the loaded rows do.
        comment(COMMENT_1, 2, comment_deleted()),
        // Names POST_2, whose loaded row names GO.
        comment(COMMENT_2, 1, comment_added(POST_2, "hello")),
        // Names itself and ZIG.
        post(POST_3, 1, post_created(ZIG, "three")),
        category(ELM, 1, category_created("Elm")),
        account(ANN, 1, AccountEvent::AccountVerified {}),
    ];
    let events = decode::batch(&batch);
    let mut rows = Rows::default();
    let planned = load_planned(&db, &events, &mut rows);
    assert_eq!(
        planned,
        [
            (View::Comments, ids([COMMENT_1, COMMENT_2])),
            (View::Posts, ids([POST_1, POST_2, POST_3])),
            (View::Categories, ids([RUST, GO, ZIG, ELM])),
            (View::Accounts, ids([ANN])),
        ]
    );
}

#[test]
fn the_harness_catches_rows_the_plan_did_not_load() {
    // The check every test makes, seen failing: a comment folded into rows nothing was
    // loaded into touches the comment's row and its post's.
    let batch = [comment(COMMENT_1, 1, comment_added(POST_1, "hi"))];
    let mut rows = Rows::default();
    assert_eq!(fold(&mut rows, decode::batch(&batch)), Ok(applied(1, 0, 0)));
    assert_eq!(
        rows.not_loaded(),
        [(View::Posts, id(POST_1)), (View::Comments, id(COMMENT_1))]
    );
    // And an event quarantined where the aggregate's quarantine was not loaded.
    let mut rows = Rows::default();
    assert_eq!(
        fold(&mut rows, decode::batch(&[poison(POST_1, 1)])),
        Ok(quarantining(0, 0, 1))
    );
    assert_eq!(
        rows.quarantine.not_loaded(),
        [(AggregateKind::Post, id(POST_1))]
    );
}

#[test]
fn the_plan_loads_an_undecodable_events_own_row_and_every_followed_aggregates_quarantine() {
    let batch = [
        // Its own row only: its version says whether it is the row's next event.
        poison(POST_1, 2),
        raw("category", RUST, 1, "CategoryRenamed", json!({})),
        comment(COMMENT_1, 1, comment_added(POST_2, "hi")),
        // Not followed: nothing.
        raw("session", ANN, 1, "SessionOpened", json!({})),
    ];
    let events = decode::batch(&batch);
    let mut rows = Rows::default();
    let planned = load_planned(&Rows::default(), &events, &mut rows);
    assert_eq!(
        planned,
        [
            (View::Comments, ids([COMMENT_1])),
            (View::Posts, ids([POST_1, POST_2])),
            (View::Categories, ids([RUST])),
            (View::Accounts, ids([])),
        ]
    );
    assert_eq!(
        plan::aggregates(&events),
        BTreeSet::from([
            (AggregateKind::Category, id(RUST)),
            (AggregateKind::Post, id(POST_1)),
            (AggregateKind::Comment, id(COMMENT_1)),
        ])
    );
}

// --- Ordering ----------------------------------------------------------------------------

#[test]
fn events_of_one_aggregate_apply_in_sequence() {
    let mut db = Rows::default();
    let batch = [
        post(POST_1, 1, post_created(RUST, "first")),
        post(POST_1, 2, post_edited(Some("second"), None)),
        post(POST_1, 3, post_edited(None, Some("new text"))),
    ];
    assert_eq!(apply(&mut db, &batch), Ok(applied(3, 0, 0)));
    assert_eq!(
        post_row(&db, POST_1),
        PostRow {
            category_id: Some(id(RUST)),
            author_id: Some(id(ANN)),
            title: Some("second".to_string()),
            content: Some("new text".to_string()),
            comment_count: 0,
            created_at: Some(at(1)),
            updated_at: Some(at(3)),
            deleted: false,
            version: 3,
        }
    );
}

#[test]
fn a_closed_account_keeps_its_row_without_a_nickname() {
    let db = tables_after(&[&[
        account(
            ANN,
            1,
            AccountEvent::AccountRegistered {
                email: "ann@example.com".to_string(),
                nickname: "ann".to_string(),
            },
        ),
        account(ANN, 2, AccountEvent::AccountVerified {}),
        account(ANN, 3, AccountEvent::AccountClosed {}),
    ]]);
    assert_eq!(
        account_row(&db, ANN),
        AccountRow {
            nickname: None,
            closed: true,
            version: 3,
        }
    );
}

#[test]
fn a_released_sign_up_keeps_no_nickname() {
    // Its key is destroyed with the release, so a rebuild reads its nickname erased; the
    // live row must not keep the nickname a rebuild cannot have.
    let db = tables_after(&[&[
        account(
            ANN,
            1,
            AccountEvent::AccountRegistered {
                email: "ann@example.com".to_string(),
                nickname: "ann".to_string(),
            },
        ),
        account(
            ANN,
            2,
            AccountEvent::SignUpReleased {
                reason: aggregates::account::ReleaseReason::Expired,
            },
        ),
    ]]);
    assert_eq!(
        account_row(&db, ANN),
        AccountRow {
            nickname: None,
            closed: true,
            version: 2,
        }
    );
}

#[test]
fn each_view_takes_its_fields_from_its_events() {
    let db = tables_after(&[&[
        account(
            ANN,
            1,
            AccountEvent::AccountRegistered {
                email: "ann@example.com".to_string(),
                nickname: "ann".to_string(),
            },
        ),
        account(ANN, 2, AccountEvent::AccountVerified {}),
        account(ANN, 3, AccountEvent::AccountPromoted { role: Role::Admin }),
        category(RUST, 1, category_created("Rust")),
        comment(COMMENT_1, 1, comment_added(POST_1, "hi")),
    ]]);
    assert_eq!(
        account_row(&db, ANN),
        AccountRow {
            nickname: Some("ann".to_string()),
            closed: false,
            version: 3,
        }
    );
    assert_eq!(
        category_row(&db, RUST),
        CategoryRow {
            name: Some("Rust".to_string()),
            description: Some("about Rust".to_string()),
            post_count: 0,
            created_at: Some(at(1)),
            version: 1,
        }
    );
    assert_eq!(
        comment_row(&db, COMMENT_1),
        CommentRow {
            post_id: Some(id(POST_1)),
            author_id: Some(id(ANN)),
            content: Some("hi".to_string()),
            created_at: Some(at(1)),
            deleted: false,
            version: 1,
        }
    );
}

#[test]
fn events_of_different_aggregates_leave_the_same_rows_in_any_order() {
    let category = category(RUST, 1, category_created("Rust"));
    let post = post(POST_1, 1, post_created(RUST, "first"));
    let comment = comment(COMMENT_1, 1, comment_added(POST_1, "hi"));
    let in_order = tables_after(&[&[category.clone(), post.clone(), comment.clone()]]);
    assert_eq!(category_row(&in_order, RUST).post_count, 1);
    assert_eq!(post_row(&in_order, POST_1).comment_count, 1);
    // Counted rows before their own creating events, in one batch...
    let reversed = tables_after(&[&[comment.clone(), post.clone(), category.clone()]]);
    assert_eq!(reversed, in_order);
    // ...and in batches of their own, as from three partitions.
    let apart = tables_after(&[&[comment], &[post], &[category]]);
    assert_eq!(apart, in_order);
}

#[test]
fn a_comment_counted_before_its_post_arrives_stays_counted_when_it_does() {
    let mut db = Rows::default();
    let added = comment(COMMENT_1, 1, comment_added(POST_1, "early"));
    assert_eq!(apply(&mut db, &[added]), Ok(applied(1, 0, 0)));
    // The post's row holds only the count until the post is created (version 0, no
    // `created_at`, so not shown).
    assert_eq!(
        post_row(&db, POST_1),
        PostRow {
            comment_count: 1,
            ..PostRow::default()
        }
    );
    let created = post(POST_1, 1, post_created(RUST, "late"));
    assert_eq!(apply(&mut db, &[created]), Ok(applied(1, 0, 0)));
    let row = post_row(&db, POST_1);
    assert_eq!(row.comment_count, 1);
    assert_eq!(row.version, 1);
    assert_eq!(row.title.as_deref(), Some("late"));
    assert_eq!(row.created_at, Some(at(1)));
}

#[test]
fn a_post_counted_before_its_category_arrives_stays_counted_when_it_does() {
    let mut db = Rows::default();
    let created = post(POST_1, 1, post_created(RUST, "early"));
    assert_eq!(apply(&mut db, &[created]), Ok(applied(1, 0, 0)));
    assert_eq!(
        category_row(&db, RUST),
        CategoryRow {
            post_count: 1,
            ..CategoryRow::default()
        }
    );
    let category = category(RUST, 1, category_created("Rust"));
    assert_eq!(apply(&mut db, &[category]), Ok(applied(1, 0, 0)));
    let row = category_row(&db, RUST);
    assert_eq!(row.post_count, 1);
    assert_eq!(row.version, 1);
    assert_eq!(row.name.as_deref(), Some("Rust"));
}

// --- Redelivery --------------------------------------------------------------------------

#[test]
fn a_redelivered_batch_counts_as_duplicates_and_writes_nothing() {
    let batch = [
        category(RUST, 1, category_created("Rust")),
        post(POST_1, 1, post_created(RUST, "first")),
        comment(COMMENT_1, 1, comment_added(POST_1, "hi")),
        comment(COMMENT_2, 1, comment_added(POST_1, "hello")),
        comment(COMMENT_1, 2, comment_deleted()),
        post(POST_1, 2, post_edited(Some("second"), None)),
    ];
    let mut db = Rows::default();
    assert_eq!(apply(&mut db, &batch), Ok(applied(6, 0, 0)));
    let before = db.clone();
    assert_eq!(
        apply_and_list_writes(&mut db, &batch),
        Ok((applied(0, 6, 0), vec![]))
    );
    assert_eq!(db, before);
    assert_eq!(category_row(&db, RUST).post_count, 1);
    assert_eq!(post_row(&db, POST_1).comment_count, 1);
}

#[test]
fn an_event_twice_in_one_batch_applies_and_counts_once() {
    let created = post(POST_1, 1, post_created(RUST, "first"));
    let added = comment(COMMENT_1, 1, comment_added(POST_1, "hi"));
    let mut db = Rows::default();
    let batch = [created.clone(), added.clone(), added, created];
    assert_eq!(apply(&mut db, &batch), Ok(applied(2, 2, 0)));
    assert_eq!(category_row(&db, RUST).post_count, 1);
    assert_eq!(post_row(&db, POST_1).comment_count, 1);
}

#[test]
fn an_older_event_after_newer_ones_changes_nothing() {
    let mut db = tables_after(&[&[
        post(POST_1, 1, post_created(RUST, "first")),
        post(POST_1, 2, post_edited(Some("second"), None)),
        post(POST_1, 3, post_edited(Some("third"), None)),
    ]]);
    let old = post(POST_1, 2, post_edited(Some("second"), None));
    assert_eq!(
        apply_and_list_writes(&mut db, &[old]),
        Ok((applied(0, 1, 0), vec![]))
    );
    let row = post_row(&db, POST_1);
    assert_eq!(row.title.as_deref(), Some("third"));
    assert_eq!(row.updated_at, Some(at(3)));
    assert_eq!(row.version, 3);
}

// --- Gaps --------------------------------------------------------------------------------

#[test]
fn a_gap_stops_the_batch_and_nothing_is_written() {
    let mut db = tables_after(&[&[post(POST_1, 1, post_created(RUST, "first"))]]);
    let before = db.clone();
    let batch = [
        category(RUST, 1, category_created("Rust")),
        post(POST_1, 4, post_edited(Some("fourth"), None)),
        comment(COMMENT_1, 1, comment_added(POST_1, "hi")),
    ];
    assert_eq!(
        apply(&mut db, &batch),
        Err(Gap {
            index: 1,
            aggregate_type: "post".to_string(),
            aggregate_id: id(POST_1),
            from: 2,
            to: 3,
        })
    );
    // Not even the category before the gap: the caller rolls back and tries again.
    assert_eq!(db, before);
}

#[test]
fn a_gap_at_a_rows_first_event_starts_at_sequence_one() {
    let mut db = Rows::default();
    assert_eq!(
        apply(&mut db, &[comment(COMMENT_1, 3, comment_deleted())]),
        Err(Gap {
            index: 0,
            aggregate_type: "comment".to_string(),
            aggregate_id: id(COMMENT_1),
            from: 1,
            to: 2,
        })
    );
    assert_eq!(db, Rows::default());
}

#[test]
fn a_gap_filled_at_its_index_applies_the_whole_batch() {
    let mut db = tables_after(&[&[post(POST_1, 1, post_created(RUST, "first"))]]);
    let mut batch = vec![
        category(RUST, 1, category_created("Rust")),
        post(POST_1, 4, post_edited(Some("fourth"), None)),
        comment(COMMENT_1, 1, comment_added(POST_1, "hi")),
    ];
    let gap = apply(&mut db, &batch).unwrap_err();
    // What the projector does: fetch sequences `from..=to` from the event store, put them
    // in at `index`, and apply the batch again.
    let missing = (gap.from..=gap.to).map(|sequence| {
        let text = format!("text {sequence}");
        post(POST_1, sequence, post_edited(None, Some(&text)))
    });
    batch.splice(gap.index..gap.index, missing);
    assert_eq!(apply(&mut db, &batch), Ok(applied(5, 0, 0)));
    let row = post_row(&db, POST_1);
    assert_eq!(row.version, 4);
    assert_eq!(row.title.as_deref(), Some("fourth"));
    assert_eq!(row.content.as_deref(), Some("text 3"));
    assert_eq!(row.comment_count, 1);
    let category = category_row(&db, RUST);
    assert_eq!(category.name.as_deref(), Some("Rust"));
    assert_eq!(category.post_count, 1);
}

// --- Deletes and counters ----------------------------------------------------------------

#[test]
fn a_deleted_post_leaves_its_category_count_once() {
    let mut db = tables_after(&[&[
        category(RUST, 1, category_created("Rust")),
        post(POST_1, 1, post_created(RUST, "first")),
        post(POST_2, 1, post_created(RUST, "second")),
    ]]);
    assert_eq!(category_row(&db, RUST).post_count, 2);
    // In a batch of its own: only the post's loaded row names the category.
    let deleted = post(POST_1, 2, post_deleted());
    assert_eq!(
        apply(&mut db, std::slice::from_ref(&deleted)),
        Ok(applied(1, 0, 0))
    );
    assert!(post_row(&db, POST_1).deleted);
    assert!(!post_row(&db, POST_2).deleted);
    assert_eq!(category_row(&db, RUST).post_count, 1);
    assert_eq!(
        apply(&mut db, &[deleted.clone(), deleted]),
        Ok(applied(0, 2, 0))
    );
    assert_eq!(category_row(&db, RUST).post_count, 1);
}

#[test]
fn a_deleted_comment_leaves_its_post_count_once() {
    let mut db = tables_after(&[&[
        post(POST_1, 1, post_created(RUST, "first")),
        comment(COMMENT_1, 1, comment_added(POST_1, "hi")),
        comment(COMMENT_2, 1, comment_added(POST_1, "hello")),
    ]]);
    assert_eq!(post_row(&db, POST_1).comment_count, 2);
    // In a batch of its own: only the comment's loaded row names the post.
    let deleted = comment(COMMENT_1, 2, comment_deleted());
    assert_eq!(
        apply(&mut db, std::slice::from_ref(&deleted)),
        Ok(applied(1, 0, 0))
    );
    assert!(comment_row(&db, COMMENT_1).deleted);
    assert!(!comment_row(&db, COMMENT_2).deleted);
    assert_eq!(post_row(&db, POST_1).comment_count, 1);
    assert_eq!(
        apply(&mut db, &[deleted.clone(), deleted]),
        Ok(applied(0, 2, 0))
    );
    assert_eq!(post_row(&db, POST_1).comment_count, 1);
}

#[test]
fn an_edit_after_a_delete_changes_the_text_but_not_the_delete_or_the_count() {
    // The post aggregate refuses to edit a deleted post; an edit that comes after the
    // delete anyway is applied like any next event, and the post stays deleted.
    let mut db = tables_after(&[&[
        category(RUST, 1, category_created("Rust")),
        post(POST_1, 1, post_created(RUST, "first")),
        post(POST_1, 2, post_deleted()),
    ]]);
    let edited = post(POST_1, 3, post_edited(Some("after"), None));
    assert_eq!(apply(&mut db, &[edited]), Ok(applied(1, 0, 0)));
    let row = post_row(&db, POST_1);
    assert!(row.deleted);
    assert_eq!(row.title.as_deref(), Some("after"));
    assert_eq!(row.updated_at, Some(at(3)));
    assert_eq!(row.version, 3);
    assert_eq!(category_row(&db, RUST).post_count, 0);
}

#[test]
fn a_comment_added_to_a_deleted_post_still_counts() {
    // A comment can be added in the instant its post is deleted (see
    // `aggregates::comment`); the query side hides it together with the post.
    let mut db = tables_after(&[&[
        post(POST_1, 1, post_created(RUST, "first")),
        post(POST_1, 2, post_deleted()),
    ]]);
    let added = comment(COMMENT_1, 1, comment_added(POST_1, "late"));
    assert_eq!(apply(&mut db, &[added]), Ok(applied(1, 0, 0)));
    let row = post_row(&db, POST_1);
    assert!(row.deleted);
    assert_eq!(row.comment_count, 1);
}

#[test]
fn counters_count_each_categorys_live_posts_and_each_posts_live_comments() {
    let db = tables_after(&[
        &[
            category(RUST, 1, category_created("Rust")),
            category(GO, 1, category_created("Go")),
            post(POST_1, 1, post_created(RUST, "one")),
            post(POST_2, 1, post_created(RUST, "two")),
            post(POST_3, 1, post_created(GO, "three")),
            comment(COMMENT_1, 1, comment_added(POST_1, "a")),
            comment(COMMENT_2, 1, comment_added(POST_1, "b")),
            comment(COMMENT_3, 1, comment_added(POST_3, "c")),
        ],
        &[
            post(POST_2, 2, post_deleted()),
            comment(COMMENT_1, 2, comment_deleted()),
        ],
    ]);
    assert_eq!(category_row(&db, RUST).post_count, 1);
    assert_eq!(category_row(&db, GO).post_count, 1);
    assert_eq!(post_row(&db, POST_1).comment_count, 1);
    assert_eq!(post_row(&db, POST_2).comment_count, 0);
    assert_eq!(post_row(&db, POST_3).comment_count, 1);
}

// --- Skipped events ----------------------------------------------------------------------

#[test]
fn events_of_aggregates_the_read_models_do_not_follow_are_skipped() {
    let mut db = Rows::default();
    let batch = [
        raw(
            "session",
            ANN,
            1,
            "SessionOpened",
            json!({ "device": "phone" }),
        ),
        account(ANN, 1, AccountEvent::AccountVerified {}),
    ];
    assert_eq!(
        apply_and_list_writes(&mut db, &batch),
        Ok((applied(1, 0, 1), vec![(View::Accounts, id(ANN))]))
    );
    assert_eq!(account_row(&db, ANN).version, 1);
}

// --- Quarantine --------------------------------------------------------------------------

/// A `PostEdited` whose title is a number: no `PostEvent` decodes from it.
fn poison(post: Uuid, sequence: i64) -> Envelope {
    raw("post", post, sequence, "PostEdited", json!({ "title": 42 }))
}

const UNDECODABLE: &str = "cannot be decoded: invalid type: integer `42`, expected a string";

fn waits_behind(sequence: i64) -> String {
    format!("waits behind sequence {sequence}, in quarantine")
}

#[test]
fn undecodable_events_are_quarantined_and_the_rest_applied() {
    let mut db = Rows::default();
    let batch = [
        // A field missing.
        raw(
            "post",
            POST_1,
            1,
            "PostCreated",
            json!({ "title": "no category" }),
        ),
        // A type the aggregate does not have.
        raw("comment", COMMENT_1, 1, "CommentPinned", json!({})),
        category(RUST, 1, category_created("Rust")),
    ];
    assert_eq!(
        apply_and_list_writes(&mut db, &batch),
        Ok((quarantining(1, 0, 2), vec![(View::Categories, id(RUST))]))
    );
    let [post, comment] = <[_; 2]>::try_from(quarantine(&db)).unwrap();
    assert_eq!((post.0, post.1), (id(POST_1), 1));
    assert_eq!(
        post.2, "cannot be decoded: missing field `category_id`",
        "the reason is serde's"
    );
    assert_eq!((comment.0, comment.1), (id(COMMENT_1), 1));
    assert!(
        comment.2.contains("unknown variant `CommentPinned`"),
        "{}",
        comment.2
    );
    // The rows stay as they were: not created, version 0.
    assert_eq!(post_row(&db, POST_1), PostRow::default());
    assert_eq!(comment_row(&db, COMMENT_1), CommentRow::default());
    // The envelope is kept whole, for the operator.
    assert_eq!(db.quarantine.rows()[0].envelope, batch[0]);
}

#[test]
fn an_undecodable_event_holds_its_aggregates_later_events_and_the_rest_goes_on() {
    let mut db = tables_after(&[&[post(POST_1, 1, post_created(RUST, "first"))]]);
    let batch = [
        poison(POST_1, 2),
        post(POST_1, 3, post_edited(Some("third"), None)),
        // Other aggregates, one of them counted on the held post's row.
        post(POST_2, 1, post_created(RUST, "second")),
        comment(COMMENT_1, 1, comment_added(POST_1, "hi")),
        post(POST_1, 4, post_deleted()),
    ];
    // No gap at sequence 3, as there was when the poison was skipped: it waits.
    assert_eq!(apply(&mut db, &batch), Ok(quarantining(2, 0, 3)));
    assert_eq!(
        quarantine(&db),
        [
            (id(POST_1), 2, UNDECODABLE.to_string()),
            (id(POST_1), 3, waits_behind(2)),
            (id(POST_1), 4, waits_behind(2)),
        ]
    );
    let held = post_row(&db, POST_1);
    assert_eq!(held.version, 1);
    assert_eq!(held.title.as_deref(), Some("first"));
    assert!(!held.deleted, "the delete waits behind the poison too");
    assert_eq!(held.comment_count, 1);
    assert_eq!(post_row(&db, POST_2).version, 1);
    assert_eq!(category_row(&db, RUST).post_count, 2);

    // Later batches: the aggregate's events keep waiting, others go on.
    let later = [
        post(POST_1, 5, post_edited(None, Some("fifth"))),
        post(POST_2, 2, post_edited(Some("second, edited"), None)),
    ];
    assert_eq!(apply(&mut db, &later), Ok(quarantining(1, 0, 1)));
    assert_eq!(quarantine(&db)[3], (id(POST_1), 5, waits_behind(2)));
    assert_eq!(post_row(&db, POST_1).version, 1);
    assert_eq!(post_row(&db, POST_2).version, 2);
}

#[test]
fn a_redelivered_quarantined_event_changes_nothing() {
    let mut db = tables_after(&[&[post(POST_1, 1, post_created(RUST, "first"))]]);
    let batch = [
        poison(POST_1, 2),
        post(POST_1, 3, post_edited(Some("third"), None)),
        post(POST_2, 1, post_created(RUST, "second")),
    ];
    assert_eq!(apply(&mut db, &batch), Ok(quarantining(1, 0, 2)));
    let before = db.clone();
    // Again, and in one batch twice: duplicates, the quarantine and the rows as they were.
    assert_eq!(
        apply_and_list_writes(&mut db, &batch),
        Ok((applied(0, 3, 0), vec![]))
    );
    let twice = [poison(POST_1, 2), poison(POST_1, 2)];
    assert_eq!(apply(&mut db, &twice), Ok(applied(0, 2, 0)));
    assert_eq!(db, before);
    // In one batch twice, before ever being quarantined: held once.
    let mut db = tables_after(&[&[post(POST_1, 1, post_created(RUST, "first"))]]);
    assert_eq!(apply(&mut db, &twice), Ok(quarantining(0, 1, 1)));
    assert_eq!(quarantine(&db).len(), 1);
}

#[test]
fn an_undecodable_event_already_applied_is_a_duplicate() {
    let mut db = tables_after(&[&[
        post(POST_1, 1, post_created(RUST, "first")),
        post(POST_1, 2, post_edited(Some("second"), None)),
    ]]);
    assert_eq!(apply(&mut db, &[poison(POST_1, 2)]), Ok(applied(0, 1, 0)));
    assert_eq!(quarantine(&db), []);
}

#[test]
fn a_gap_inside_a_quarantined_aggregate_is_not_a_gap() {
    let mut db = tables_after(&[&[post(POST_1, 1, post_created(RUST, "first"))]]);
    assert_eq!(
        apply(&mut db, &[poison(POST_1, 2)]),
        Ok(quarantining(0, 0, 1))
    );
    // 3 and 4 never arrived: fetching them would only bring them to wait as well.
    let late = post(POST_1, 5, post_edited(Some("fifth"), None));
    assert_eq!(apply(&mut db, &[late]), Ok(quarantining(0, 0, 1)));
    assert_eq!(
        quarantine(&db),
        [
            (id(POST_1), 2, UNDECODABLE.to_string()),
            (id(POST_1), 5, waits_behind(2)),
        ]
    );
}

#[test]
fn a_gap_filled_with_an_undecodable_event_ends() {
    // What made the projector loop for ever: the gap before sequence 3 was filled from
    // the store with the poison, which was skipped, which left the same gap.
    let mut db = tables_after(&[&[post(POST_1, 1, post_created(RUST, "first"))]]);
    let mut batch = vec![
        post(POST_1, 3, post_edited(Some("third"), None)),
        category(RUST, 1, category_created("Rust")),
    ];
    let gap = apply(&mut db, &batch).unwrap_err();
    assert_eq!((gap.index, gap.from, gap.to), (0, 2, 2));
    // An undecodable event behind a gap is no exception: what is missing comes first.
    assert_eq!(
        apply(&mut db, &[poison(POST_1, 3)]).unwrap_err(),
        Gap {
            index: 0,
            ..gap.clone()
        }
    );
    batch.insert(gap.index, poison(POST_1, 2));
    assert_eq!(apply(&mut db, &batch), Ok(quarantining(1, 0, 2)));
    assert_eq!(
        quarantine(&db),
        [
            (id(POST_1), 2, UNDECODABLE.to_string()),
            (id(POST_1), 3, waits_behind(2)),
        ]
    );
}

/// POST_1 created, then the poison at 2 and an edit at 3 waiting behind it.
fn with_a_quarantined_post() -> Rows {
    let mut db = tables_after(&[&[post(POST_1, 1, post_created(RUST, "first"))]]);
    let batch = [
        poison(POST_1, 2),
        post(POST_1, 3, post_edited(None, Some("third"))),
    ];
    apply(&mut db, &batch).unwrap();
    db
}

#[test]
fn a_retry_after_a_fix_applies_the_quarantined_events_in_order() {
    let mut db = with_a_quarantined_post();
    // The store's events, the poison fixed.
    let store = [
        post(POST_1, 1, post_created(RUST, "first")),
        post(POST_1, 2, post_edited(Some("fixed"), None)),
        post(POST_1, 3, post_edited(None, Some("third"))),
    ];
    assert_eq!(retry_post(&mut db, POST_1, &store), Ok(applied(2, 1, 0)));
    assert_eq!(quarantine(&db), []);
    let row = post_row(&db, POST_1);
    assert_eq!(row.version, 3);
    assert_eq!(row.title.as_deref(), Some("fixed"));
    assert_eq!(row.content.as_deref(), Some("third"));
    // What the live projector receives after that is a duplicate, or its next event.
    let redelivered = [
        poison(POST_1, 2),
        post(POST_1, 4, post_edited(Some("fourth"), None)),
    ];
    assert_eq!(apply(&mut db, &redelivered), Ok(applied(1, 1, 0)));
    assert_eq!(post_row(&db, POST_1).version, 4);
}

#[test]
fn a_retry_puts_back_what_still_fails() {
    let mut db = with_a_quarantined_post();
    let before = db.clone();
    let store = [
        post(POST_1, 1, post_created(RUST, "first")),
        poison(POST_1, 2),
        post(POST_1, 3, post_edited(None, Some("third"))),
    ];
    assert_eq!(
        retry_post(&mut db, POST_1, &store),
        Ok(quarantining(0, 1, 2))
    );
    assert_eq!(quarantine(&db), quarantine(&before));
    assert_eq!(post_row(&db, POST_1), post_row(&before, POST_1));
}

#[test]
fn a_retry_leaves_waiting_what_came_after_the_events_it_brings() {
    // Sequence 4 reached the quarantine after the retry read the store: it is not among
    // the events the retry brings, so it stays, and the next retry applies it.
    let mut db = with_a_quarantined_post();
    let fourth = post(POST_1, 4, post_edited(Some("fourth"), None));
    apply(&mut db, std::slice::from_ref(&fourth)).unwrap();
    let mut store = vec![
        post(POST_1, 1, post_created(RUST, "first")),
        post(POST_1, 2, post_edited(Some("fixed"), None)),
        post(POST_1, 3, post_edited(None, Some("third"))),
    ];
    assert_eq!(retry_post(&mut db, POST_1, &store), Ok(applied(2, 1, 0)));
    assert_eq!(quarantine(&db), [(id(POST_1), 4, waits_behind(2))]);
    assert_eq!(post_row(&db, POST_1).version, 3);
    // Meanwhile it still holds back its aggregate's later events.
    let fifth = post(POST_1, 5, post_deleted());
    assert_eq!(
        apply(&mut db, std::slice::from_ref(&fifth)),
        Ok(quarantining(0, 0, 1))
    );
    store.extend([fourth, fifth]);
    assert_eq!(retry_post(&mut db, POST_1, &store), Ok(applied(2, 3, 0)));
    assert_eq!(quarantine(&db), []);
    let row = post_row(&db, POST_1);
    assert_eq!((row.version, row.deleted), (5, true));
    assert_eq!(row.title.as_deref(), Some("fourth"));
}

#[test]
fn a_retry_fills_a_gap_inside_the_quarantined_aggregate() {
    let mut db = with_a_quarantined_post();
    // 4 and 5 never reached this projector; 6 waits behind the poison.
    apply(&mut db, &[post(POST_1, 6, post_deleted())]).unwrap();
    let store = [
        post(POST_1, 1, post_created(RUST, "first")),
        post(POST_1, 2, post_edited(Some("fixed"), None)),
        post(POST_1, 3, post_edited(None, Some("third"))),
        post(POST_1, 4, post_edited(None, Some("fourth"))),
        post(POST_1, 5, post_edited(None, Some("fifth"))),
        post(POST_1, 6, post_deleted()),
    ];
    assert_eq!(retry_post(&mut db, POST_1, &store), Ok(applied(5, 1, 0)));
    assert_eq!(quarantine(&db), []);
    let row = post_row(&db, POST_1);
    assert_eq!((row.version, row.deleted), (6, true));
    assert_eq!(row.content.as_deref(), Some("fifth"));
    assert_eq!(category_row(&db, RUST).post_count, 0);
}
