//! `events export`: the history as JSON Lines (one Kafka envelope per line) or CSV.
//!
//! Most events leave the store exactly as they were written, and for those the payload
//! and metadata are copied as JSON text, never parsed: parsing them into trees and writing
//! the trees out again took most of the export's time. Only an event a reader must change
//! first (raised from an old version by an upcaster, or with personal fields to open) is
//! parsed, and goes the way every other reader takes ([`StoredRow::decode`], the vault,
//! [`into_envelope`]). The two differ only in the order of an object's keys, which JSON
//! leaves free: jsonb's (shorter keys first) for the copied, serde_json's (alphabetical)
//! for the parsed.

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
    let unchanged: Vec<Option<&RawValue>> = stored.iter().map(unchanged_body).collect();
    // The events that change on the way out, parsed, with one key lookup for the page.
    let mut changed = stored
        .iter()
        .zip(&unchanged)
        .filter(|(_, body)| body.is_none())
        .map(|(row, _)| row.decode())
        .collect::<Result<Vec<_>, _>>()?;
    vault.open_all(&mut changed, Reveal::Public).await?;
    let mut changed = changed.into_iter();
    for (row, body) in stored.iter().zip(unchanged) {
        let envelope = match body {
            Some(body) => as_stored(row, body)?,
            None => {
                let event = changed.next().expect("one parsed event per changed row");
                into_envelope(event).map_json(|json| serde_json::value::to_raw_value(&json))?
            }
        };
        writer.write(&envelope)?;
    }
    Ok(())
}

/// The fields of an event that leaves as it was stored: at its current version, with no
/// personal fields, and stored as `{"<EventType>": fields}` (as cqrs-es writes every
/// event). `None` for any other.
fn unchanged_body<'r>(row: &StoredRow<'r>) -> Option<&'r RawValue> {
    if !row.is_current() || !personal_fields(row.event_type).is_empty() {
        return None;
    }
    Envelope::untag_text(row.event_type, row.payload)
}

/// The envelope of an event that leaves as stored, `body` being its fields.
fn as_stored(row: &StoredRow, body: &RawValue) -> anyhow::Result<TextEnvelope> {
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
        payload: compact(body.get())?,
        metadata: compact(row.metadata)?,
    })
}

/// `json` without whitespace between its tokens: PostgreSQL writes jsonb with a space
/// after each `:` and `,`, where serde_json (the parsed events, the topic) writes none,
/// and an export's lines look alike whichever way their event took.
fn compact(text: &str) -> serde_json::Result<Box<RawValue>> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut kept_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i + 1),
            byte if byte.is_ascii_whitespace() => {
                // An ASCII byte outside a string is a whole character: slicing here is safe.
                out.push_str(&text[kept_from..i]);
                i += 1;
                kept_from = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[kept_from..]);
    RawValue::from_string(out)
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
                csv.write_record([
                    e.event_id.to_string().as_str(),
                    &e.global_position.to_string(),
                    &e.transaction_id.to_string(),
                    &crate::http::format_time(e.recorded_at),
                    &e.aggregate_type,
                    &e.aggregate_id,
                    &e.sequence.to_string(),
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
        compact(text).unwrap().get().to_string()
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
}
