//! The view rows a batch works on, and the quarantine of its aggregates: loaded and
//! locked together, changed in memory, written back together.

use std::collections::{BTreeMap, BTreeSet};

use aggregates::AggregateKind;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlConnection, QueryBuilder};

use crate::views::{self, ViewTable};

#[cfg(test)]
mod in_memory;
mod quarantine;

#[cfg(test)]
pub use quarantine::Quarantined;
pub use quarantine::{Aggregate, Quarantine};

/// The view tables, each keyed by its aggregate's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    Accounts,
    Categories,
    Posts,
    Comments,
}

impl View {
    /// The table this fold's view is kept in (see [`crate::views`]).
    fn descriptor(self) -> &'static ViewTable {
        match self {
            Self::Accounts => &views::ACCOUNTS,
            Self::Categories => &views::CATEGORIES,
            Self::Posts => &views::POSTS,
            Self::Comments => &views::COMMENTS,
        }
    }

    fn table(self) -> &'static str {
        self.descriptor().table
    }

    /// The kind of aggregate whose rows this view keeps.
    pub fn kind(self) -> AggregateKind {
        self.descriptor().kind
    }

    fn key(self) -> &'static str {
        self.descriptor().key()
    }

    /// Every column, key first.
    fn columns(self) -> &'static [&'static str] {
        self.descriptor().columns
    }
}

#[derive(Debug, Default, Clone, PartialEq, FromRow)]
pub struct AccountRow {
    pub nickname: Option<String>,
    pub closed: bool,
    pub version: i64,
}

#[derive(Debug, Default, Clone, PartialEq, FromRow)]
pub struct CategoryRow {
    pub name: Option<String>,
    pub description: Option<String>,
    pub post_count: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub version: i64,
}

#[derive(Debug, Default, Clone, PartialEq, FromRow)]
pub struct PostRow {
    pub category_id: Option<String>,
    pub author_id: Option<String>,
    pub title: Option<String>,
    pub content: Option<String>,
    pub comment_count: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    pub version: i64,
}

#[derive(Debug, Default, Clone, PartialEq, FromRow)]
pub struct CommentRow {
    pub post_id: Option<String>,
    pub author_id: Option<String>,
    pub content: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    pub version: i64,
}

/// The rows of one batch, by id; each keeps the state it was loaded with, so only changed
/// rows are written back.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rows {
    pub accounts: BTreeMap<String, AccountRow>,
    pub categories: BTreeMap<String, CategoryRow>,
    pub posts: BTreeMap<String, PostRow>,
    pub comments: BTreeMap<String, CommentRow>,
    /// What the quarantine holds of the batch's aggregates, and what the batch adds to it.
    pub quarantine: Quarantine,
    loaded_accounts: BTreeMap<String, AccountRow>,
    loaded_categories: BTreeMap<String, CategoryRow>,
    loaded_posts: BTreeMap<String, PostRow>,
    loaded_comments: BTreeMap<String, CommentRow>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    None,
    ForUpdate,
}

#[derive(FromRow)]
struct Keyed<T> {
    id: String,
    #[sqlx(flatten)]
    row: T,
}

impl Rows {
    pub fn account(&mut self, id: &str) -> &mut AccountRow {
        self.accounts.entry(id.to_string()).or_default()
    }
    pub fn category(&mut self, id: &str) -> &mut CategoryRow {
        self.categories.entry(id.to_string()).or_default()
    }
    pub fn post(&mut self, id: &str) -> &mut PostRow {
        self.posts.entry(id.to_string()).or_default()
    }
    pub fn comment(&mut self, id: &str) -> &mut CommentRow {
        self.comments.entry(id.to_string()).or_default()
    }

    /// Makes sure rows `ids` exist (as placeholders if need be), then locks and loads them.
    /// Creating them first means the lock is a record lock, not a gap lock that two
    /// appliers could deadlock on.
    pub async fn load(
        &mut self,
        conn: &mut MySqlConnection,
        view: View,
        ids: &BTreeSet<String>,
    ) -> Result<(), sqlx::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let (table, key) = (view.table(), view.key());
        let mut insert = QueryBuilder::new(format!("INSERT IGNORE INTO {table} ({key}) "));
        insert.push_values(ids, |mut b, id| {
            b.push_bind(id);
        });
        insert.build().execute(&mut *conn).await?;
        self.select(conn, view, ids, Lock::ForUpdate).await
    }

    /// Brings rows `ids` into memory for tables no one else writes (see `fold::Bulk`),
    /// without locks. A row not in memory yet is taken from `writing` (rows being written
    /// back, as the table will hold them) if there, else read if `stored` says the table
    /// may hold it. A row the table lacks starts as the placeholder [`Rows::load`] would
    /// have inserted, and is written with the others.
    pub async fn load_unlocked(
        &mut self,
        conn: &mut MySqlConnection,
        view: View,
        ids: &BTreeSet<String>,
        writing: Option<&Rows>,
        stored: impl Fn(&str) -> bool,
    ) -> Result<(), sqlx::Error> {
        let mut to_read = BTreeSet::new();
        let mut absent = Vec::new();
        for id in ids {
            if self.holds(view, id) || writing.is_some_and(|w| self.copy(w, view, id)) {
                continue;
            }
            if stored(id) {
                to_read.insert(id.clone());
            }
            absent.push(id);
        }
        if !to_read.is_empty() {
            self.select(conn, view, &to_read, Lock::None).await?;
        }
        // Those the table did not have after all start as placeholders.
        for id in absent {
            self.placeholder(view, id);
        }
        Ok(())
    }

    /// Row `id` of `view`, unless in memory already, as `INSERT IGNORE` makes it: every
    /// column at its default. Not as loaded, so it is written back with the changed rows.
    fn placeholder(&mut self, view: View, id: &str) {
        match view {
            View::Accounts => {
                self.account(id);
            }
            View::Categories => {
                self.category(id);
            }
            View::Posts => {
                self.post(id);
            }
            View::Comments => {
                self.comment(id);
            }
        }
    }

    /// Takes row `id` of `view` from `other`, as loaded, if it is there.
    fn copy(&mut self, other: &Rows, view: View, id: &str) -> bool {
        fn copy<T: Clone>(
            rows: &mut BTreeMap<String, T>,
            loaded: &mut BTreeMap<String, T>,
            other: &BTreeMap<String, T>,
            id: &str,
        ) -> bool {
            let Some(row) = other.get(id) else {
                return false;
            };
            loaded.insert(id.to_string(), row.clone());
            rows.insert(id.to_string(), row.clone());
            true
        }
        match view {
            View::Accounts => copy(
                &mut self.accounts,
                &mut self.loaded_accounts,
                &other.accounts,
                id,
            ),
            View::Categories => copy(
                &mut self.categories,
                &mut self.loaded_categories,
                &other.categories,
                id,
            ),
            View::Posts => copy(&mut self.posts, &mut self.loaded_posts, &other.posts, id),
            View::Comments => copy(
                &mut self.comments,
                &mut self.loaded_comments,
                &other.comments,
                id,
            ),
        }
    }

    fn holds(&self, view: View, id: &str) -> bool {
        match view {
            View::Accounts => self.accounts.contains_key(id),
            View::Categories => self.categories.contains_key(id),
            View::Posts => self.posts.contains_key(id),
            View::Comments => self.comments.contains_key(id),
        }
    }

    /// How many rows are in memory (view rows and events added to the quarantine), and
    /// roughly how many bytes of text they hold.
    pub fn size(&self) -> (usize, usize) {
        fn sum<T: RowSize>(rows: &BTreeMap<String, T>) -> (usize, usize) {
            (rows.len(), rows.values().map(RowSize::text_bytes).sum())
        }
        [
            sum(&self.accounts),
            sum(&self.categories),
            sum(&self.posts),
            sum(&self.comments),
        ]
        .into_iter()
        .chain([self.quarantine.size()])
        .fold((0, 0), |(rows, bytes), (r, b)| (rows + r, bytes + b))
    }

    /// Reads rows `ids` of `view` into memory, as loaded.
    async fn select(
        &mut self,
        conn: &mut MySqlConnection,
        view: View,
        ids: &BTreeSet<String>,
        lock: Lock,
    ) -> Result<(), sqlx::Error> {
        let (table, key) = (view.table(), view.key());
        let columns = view.columns()[1..].join(", ");
        let mut select = QueryBuilder::new(format!(
            "SELECT {key} AS id, {columns} FROM {table} WHERE {key} IN ("
        ));
        let mut list = select.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        select.push(")");
        if lock == Lock::ForUpdate {
            select.push(" FOR UPDATE");
        }
        match view {
            View::Accounts => {
                for k in select
                    .build_query_as::<Keyed<AccountRow>>()
                    .fetch_all(&mut *conn)
                    .await?
                {
                    self.loaded_accounts.insert(k.id.clone(), k.row.clone());
                    self.accounts.insert(k.id, k.row);
                }
            }
            View::Categories => {
                for k in select
                    .build_query_as::<Keyed<CategoryRow>>()
                    .fetch_all(&mut *conn)
                    .await?
                {
                    self.loaded_categories.insert(k.id.clone(), k.row.clone());
                    self.categories.insert(k.id, k.row);
                }
            }
            View::Posts => {
                for k in select
                    .build_query_as::<Keyed<PostRow>>()
                    .fetch_all(&mut *conn)
                    .await?
                {
                    self.loaded_posts.insert(k.id.clone(), k.row.clone());
                    self.posts.insert(k.id, k.row);
                }
            }
            View::Comments => {
                for k in select
                    .build_query_as::<Keyed<CommentRow>>()
                    .fetch_all(&mut *conn)
                    .await?
                {
                    self.loaded_comments.insert(k.id.clone(), k.row.clone());
                    self.comments.insert(k.id, k.row);
                }
            }
        }
        Ok(())
    }

    /// Writes back the rows that changed, a few hundred per statement, and the batch's
    /// changes to the quarantine.
    pub async fn write(&self, conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
        let accounts = changed(&self.accounts, &self.loaded_accounts);
        upsert(conn, View::Accounts, &accounts, |mut b, (id, r)| {
            b.push_bind(id.as_str())
                .push_bind(&r.nickname)
                .push_bind(r.closed)
                .push_bind(r.version);
        })
        .await?;
        let categories = changed(&self.categories, &self.loaded_categories);
        upsert(conn, View::Categories, &categories, |mut b, (id, r)| {
            b.push_bind(id.as_str())
                .push_bind(&r.name)
                .push_bind(&r.description)
                .push_bind(r.post_count)
                .push_bind(r.created_at)
                .push_bind(r.version);
        })
        .await?;
        let posts = changed(&self.posts, &self.loaded_posts);
        upsert(conn, View::Posts, &posts, |mut b, (id, r)| {
            b.push_bind(id.as_str())
                .push_bind(&r.category_id)
                .push_bind(&r.author_id)
                .push_bind(&r.title)
                .push_bind(&r.content)
                .push_bind(r.comment_count)
                .push_bind(r.created_at)
                .push_bind(r.updated_at)
                .push_bind(r.deleted)
                .push_bind(r.version);
        })
        .await?;
        let comments = changed(&self.comments, &self.loaded_comments);
        upsert(conn, View::Comments, &comments, |mut b, (id, r)| {
            b.push_bind(id.as_str())
                .push_bind(&r.post_id)
                .push_bind(&r.author_id)
                .push_bind(&r.content)
                .push_bind(r.created_at)
                .push_bind(r.deleted)
                .push_bind(r.version);
        })
        .await?;
        self.quarantine.write(conn).await
    }
}

fn changed<'a, T: PartialEq>(
    rows: &'a BTreeMap<String, T>,
    loaded: &BTreeMap<String, T>,
) -> Vec<(&'a String, &'a T)> {
    rows.iter()
        .filter(|(id, row)| loaded.get(*id) != Some(*row))
        .collect()
}

const ROWS_PER_STATEMENT: usize = 500;
/// Far below MySQL's and MariaDB's default `max_allowed_packet` (64 and 16 MiB): a
/// statement of 500 posts of 20,000 four-byte characters each would be 40 MiB.
const BYTES_PER_STATEMENT: usize = 4 * 1024 * 1024;

/// Roughly how many bytes a row takes in an INSERT: its text plus room for the rest.
pub trait RowSize {
    fn text_bytes(&self) -> usize;
}

fn len(text: &Option<String>) -> usize {
    text.as_ref().map_or(0, String::len)
}

impl RowSize for AccountRow {
    fn text_bytes(&self) -> usize {
        len(&self.nickname)
    }
}

impl RowSize for CategoryRow {
    fn text_bytes(&self) -> usize {
        len(&self.name) + len(&self.description)
    }
}

impl RowSize for PostRow {
    fn text_bytes(&self) -> usize {
        len(&self.title) + len(&self.content)
    }
}

impl RowSize for CommentRow {
    fn text_bytes(&self) -> usize {
        len(&self.content)
    }
}

/// A row with its id, as `upsert` takes them.
impl<T: RowSize> RowSize for (&String, &T) {
    fn text_bytes(&self) -> usize {
        self.1.text_bytes()
    }
}

/// Splits `rows` into statements of at most 500 rows and about 4 MiB.
fn statements<R: RowSize>(rows: &[R]) -> Vec<&[R]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let size = row.text_bytes() + 256;
        if i > start && (i - start == ROWS_PER_STATEMENT || bytes + size > BYTES_PER_STATEMENT) {
            chunks.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    chunks
}

async fn upsert<'a, T: RowSize + 'a>(
    conn: &mut MySqlConnection,
    view: View,
    rows: &[(&'a String, &'a T)],
    bind: impl Fn(sqlx::query_builder::Separated<'_, 'a, sqlx::MySql, &'static str>, &(&'a String, &'a T))
        + Copy,
) -> Result<(), sqlx::Error> {
    let columns = view.columns();
    let updates = columns[1..]
        .iter()
        .map(|c| format!("{c} = VALUES({c})"))
        .collect::<Vec<_>>()
        .join(", ");
    for chunk in statements(rows) {
        let mut insert = QueryBuilder::new(format!(
            "INSERT INTO {} ({}) ",
            view.table(),
            columns.join(", ")
        ));
        insert.push_values(chunk, bind);
        insert.push(format!(" ON DUPLICATE KEY UPDATE {updates}"));
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_stay_under_the_packet_limit() {
        let big = PostRow {
            content: Some("字".repeat(20_000)),
            ..PostRow::default()
        };
        let ids: Vec<String> = (0..600).map(|i| i.to_string()).collect();
        let rows: Vec<(&String, &PostRow)> = ids.iter().map(|id| (id, &big)).collect();
        let chunks = statements(&rows);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 600);
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(|(_, r)| r.text_bytes()).sum();
            assert!(bytes <= BYTES_PER_STATEMENT, "{bytes}");
        }
        let small = AccountRow::default();
        let rows: Vec<(&String, &AccountRow)> = ids.iter().map(|id| (id, &small)).collect();
        assert_eq!(
            statements(&rows)
                .iter()
                .map(|c| c.len())
                .collect::<Vec<_>>(),
            [500, 100]
        );
    }
}
