//! `events export`: the history as JSON Lines (one Kafka envelope per line) or CSV.
//!
//! Most events leave the store exactly as they were written, and for those the payload
//! and metadata are copied as JSON text, never parsed: parsing them into trees and writing
//! the trees out again took most of the export's time. Only an event a reader must change
//! first (raised from an old version by an upcaster, or with personal fields to open) is
//! parsed, and goes the way every other reader takes ([`StoredRow::decode`], the vault,
//! [`into_envelope`]). The two differ only where JSON leaves the text free: the order of an
//! object's keys, jsonb's (shorter keys first) for the copied and serde_json's
//! (alphabetical) for the parsed, and the spelling of a number (jsonb keeps `1.50`).

use std::io::Write;

use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::PgPool;
use tokio::sync::watch;

use projections::Envelope;

use super::Pages;
use crate::kafka::into_envelope;
use crate::personal_data::{personal_fields, Reveal, Vault};
use crate::store::reader::{Filter, StoredRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON envelope per line (the Kafka envelope).
    Jsonl,
    /// One row per event; payload and metadata as JSON text.
    Csv,
}

const CSV_HEADER: [&str; 11] = [
    "eventId",
    "globalPosition",
    "transactionId",
    "recordedAt",
    "aggregateType",
    "aggregateId",
    "sequence",
    "eventType",
    "eventVersion",
    "payload",
    "metadata",
];

/// An envelope whose payload and metadata are compact JSON text.
type TextEnvelope = Envelope<Box<RawValue>>;

/// Writes the events `filter` admits to `out`. `progress` hears each page's size.
/// Returns the number of events, and whether it was cancelled.
pub async fn export(
    pool: &PgPool,
    filter: &Filter,
    format: Format,
    out: &mut (dyn Write + Send),
    progress: &(dyn Fn(u64) + Sync),
    cancel: &watch::Receiver<bool>,
) -> anyhow::Result<(u64, bool)> {
    let mut writer = Writer::new(format, out)?;
    let vault = Vault::new(pool.clone());
    let mut pages = Pages::start(pool, filter, cancel).await?;
    while let Some(rows) = pages.next().await? {
        write_page(&rows, &vault, &mut writer).await?;
        progress(rows.len() as u64);
    }
    writer.finish()?;
    Ok(pages.outcome())
}

/// Writes a page's events, in order, as the export shows them.
async fn write_page(rows: &[PgRow], vault: &Vault, writer: &mut Writer<'_>) -> anyhow::Result<()> {
    let stored = rows
        .iter()
        .map(StoredRow::borrow)
        .collect::<Result<Vec<_>, _>>()?;
    let unchanged: Vec<Option<String>> = stored.iter().map(unchanged_fields).collect();
    // The events that change on the way out, parsed, with one key lookup for the page.
    let mut changed = stored
        .iter()
        .zip(&unchanged)
        .filter(|(_, fields)| fields.is_none())
        .map(|(row, _)| row.decode())
        .collect::<Result<Vec<_>, _>>()?;
    vault.open_all(&mut changed, Reveal::Public).await?;
    let mut changed = changed.into_iter();
    for (row, fields) in stored.iter().zip(unchanged) {
        let envelope = match fields {
            Some(fields) => as_stored(row, fields)?,
            None => {
                let event = changed.next().expect("one parsed event per changed row");
                into_envelope(event).map_json(|json| serde_json::value::to_raw_value(&json))?
            }
        };
        writer.write(&envelope)?;
    }
    Ok(())
}

/// The fields of an event that leaves as it was stored, compacted: at its current version,
/// with no personal fields, and stored as `{"<EventType>": fields}` (as cqrs-es writes
/// every event). `None` for any other, which then takes the parsed way.
fn unchanged_fields(row: &StoredRow) -> Option<String> {
    if !row.is_current() || !personal_fields(row.event_type).is_empty() {
        return None;
    }
    untagged(row.event_type, compact(row.payload))
}

/// The value of `payload` if it is an object of the one key `event_type` (the stored
/// form, compacted), without parsing it: its text is what follows `{"<event_type>":`, but
/// the closing `}`. `None` for any other shape, or a key this cannot compare as text.
fn untagged(event_type: &str, payload: Compact) -> Option<String> {
    let Compact {
        mut text,
        several_members,
    } = payload;
    let plain_key = !event_type.contains(['"', '\\']);
    let tagged = text
        .strip_prefix("{\"")
        .and_then(|rest| rest.strip_prefix(event_type))
        .is_some_and(|rest| rest.starts_with("\":") && rest.ends_with('}'));
    if !plain_key || !tagged || several_members {
        return None;
    }
    text.pop();
    text.drain(..event_type.len() + 4);
    Some(text)
}

/// The envelope of an event that leaves as stored, `fields` being its compacted fields.
fn as_stored(row: &StoredRow, fields: String) -> anyhow::Result<TextEnvelope> {
    Ok(Envelope {
        event_id: Envelope::event_id_for(row.aggregate_type, row.aggregate_id, row.sequence),
        global_position: row.checkpoint.global_position,
        transaction_id: row.checkpoint.transaction_id,
        aggregate_type: row.aggregate_type.to_owned(),
        aggregate_id: row.aggregate_id.to_owned(),
        sequence: row.sequence,
        event_type: row.event_type.to_owned(),
        event_version: row.event_version.to_owned(),
        recorded_at: row.recorded_at,
        payload: RawValue::from_string(fields)?,
        metadata: RawValue::from_string(compact(row.metadata).text)?,
    })
}

/// JSON text as PostgreSQL writes it (valid: it comes out of a jsonb column), compacted.
struct Compact {
    /// The text without whitespace between its tokens: PostgreSQL writes jsonb with a
    /// space after each `:` and `,`, where serde_json (the parsed events, the topic)
    /// writes none, and an export's lines look alike whichever way their event took.
    text: String,
    /// Whether the outermost object or array has more than one member.
    several_members: bool,
}

/// One pass over `text`: its whitespace between tokens dropped, its outermost members
/// counted ([`Compact`]).
fn compact(text: &str) -> Compact {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut kept_from = 0;
    let mut depth = 0usize;
    let mut several_members = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(bytes, i + 1);
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => several_members = true,
            byte if byte.is_ascii_whitespace() => {
                // An ASCII byte outside a string is a whole character: slicing here is safe.
                out.push_str(&text[kept_from..i]);
                kept_from = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[kept_from..]);
    Compact {
        text: out,
        several_members,
    }
}

/// The index just past the closing quote of the string whose contents start at `from`
/// (strings are most of an event's text: this jumps from quote to backslash to quote).
fn string_end(bytes: &[u8], mut from: usize) -> usize {
    while let Some(found) = memchr::memchr2(b'"', b'\\', &bytes[from..]) {
        let at = from + found;
        if bytes[at] == b'"' {
            return at + 1;
        }
        from = at + 2; // past the backslash and the character it escapes
    }
    bytes.len()
}

/// Formats envelopes in memory and hands them to `out` a block at a time: the formatters
/// write many small pieces, and each would otherwise be a call through a `dyn Write`.
struct Writer<'o> {
    lines: Lines,
    out: &'o mut (dyn Write + Send),
}

enum Lines {
    Jsonl(Vec<u8>),
    Csv(Box<csv::Writer<Vec<u8>>>),
}

/// How much formatted text is gathered before it goes to `out`.
const BLOCK: usize = 256 * 1024;

impl<'o> Writer<'o> {
    fn new(format: Format, out: &'o mut (dyn Write + Send)) -> anyhow::Result<Self> {
        let lines = match format {
            Format::Jsonl => Lines::Jsonl(Vec::with_capacity(BLOCK)),
            Format::Csv => {
                let mut csv = csv_block();
                csv.write_record(CSV_HEADER)?;
                Lines::Csv(csv)
            }
        };
        Ok(Self { lines, out })
    }

    fn write(&mut self, e: &TextEnvelope) -> anyhow::Result<()> {
        match &mut self.lines {
            Lines::Jsonl(block) => {
                serde_json::to_writer(&mut *block, e)?;
                block.push(b'\n');
                if block.len() >= BLOCK {
                    self.out.write_all(block)?;
                    block.clear();
                }
            }
            Lines::Csv(csv) => {
                // Formatted on the stack: a `String` per field was a tenth of a CSV export.
                let mut event_id = uuid::Uuid::encode_buffer();
                let (mut position, mut transaction, mut sequence) = (
                    itoa::Buffer::new(),
                    itoa::Buffer::new(),
                    itoa::Buffer::new(),
                );
                csv.write_record([
                    e.event_id.hyphenated().encode_lower(&mut event_id),
                    position.format(e.global_position),
                    transaction.format(e.transaction_id),
                    &crate::http::format_time(e.recorded_at),
                    &e.aggregate_type,
                    &e.aggregate_id,
                    sequence.format(e.sequence),
                    &e.event_type,
                    &e.event_version,
                    e.payload.get(),
                    e.metadata.get(),
                ])?;
                // What the csv writer has passed on so far (it keeps a few KiB itself).
                if csv.get_ref().len() >= BLOCK {
                    let full = std::mem::replace(csv, csv_block()).into_inner()?;
                    self.out.write_all(&full)?;
                }
            }
        }
        Ok(())
    }

    /// Writes what is left and flushes `out`.
    fn finish(self) -> anyhow::Result<()> {
        let rest = match self.lines {
            Lines::Jsonl(block) => block,
            Lines::Csv(csv) => csv.into_inner()?,
        };
        self.out.write_all(&rest)?;
        self.out.flush()?;
        Ok(())
    }
}

fn csv_block() -> Box<csv::Writer<Vec<u8>>> {
    Box::new(
        csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::with_capacity(BLOCK)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compacted(text: &str) -> String {
        compact(text).text
    }

    #[test]
    fn compact_removes_the_space_between_tokens_and_none_inside_strings() {
        assert_eq!(
            compacted(r#"{"title": "a, b: c", "tags": [1, 2.5, "x \" y"], "e": {}}"#),
            r#"{"title":"a, b: c","tags":[1,2.5,"x \" y"],"e":{}}"#
        );
        assert_eq!(
            compacted(r#""ends in a backslash \\""#),
            r#""ends in a backslash \\""#
        );
        assert_eq!(compacted(" 7 "), "7");
        assert_eq!(compacted(r#"[ "\\", "a\"" ]"#), r#"["\\","a\""]"#);
    }

    #[test]
    fn compact_tells_whether_the_outermost_value_has_several_members() {
        let several = |text: &str| compact(text).several_members;
        assert!(several(r#"{"a": 1, "b": 2}"#));
        assert!(several("[1, 2]"));
        assert!(!several(r#"{"a": [1, 2]}"#));
        assert!(!several(r#"{"a": {"b": 1, "c": 2}}"#));
        assert!(!several(r#"{"a, b": "c, d"}"#));
        assert!(!several("{}"));
        assert!(!several("7"));
    }

    #[test]
    fn only_an_object_of_the_event_type_alone_is_untagged() {
        let fields = |stored: &str| untagged("PostEdited", compact(stored));
        assert_eq!(
            fields(r#"{"PostEdited": {"title": "a, b"}}"#).as_deref(),
            Some(r#"{"title":"a, b"}"#)
        );
        assert_eq!(fields(r#"{"PostEdited": 7}"#).as_deref(), Some("7"));
        assert_eq!(fields(r#"{"PostDeleted": {}}"#), None);
        assert_eq!(fields(r#"{"PostEditedLater": {}}"#), None);
        assert_eq!(fields(r#"{"PostEdited": {}, "extra": 1}"#), None);
        assert_eq!(fields(r#"{"PostEdi\u0074ed": {}}"#), None);
        assert_eq!(fields("{}"), None);
        assert_eq!(fields(r#"["PostEdited"]"#), None);
        assert_eq!(
            untagged("Post\"Edited", compact(r#"{"Post\"Edited": 1}"#)),
            None
        );
    }
}
