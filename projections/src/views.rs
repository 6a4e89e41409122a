//! The read models' view tables, described once: for each kind of aggregate, its table,
//! its key (the aggregate's id) and its columns. The fold loads and writes rows by these,
//! the snapshot compares them, read-your-writes reads their versions, and a rebuild swaps
//! exactly these tables in. A column added to a view is added here and in a migration.

use aggregates::AggregateKind;

/// One view table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewTable {
    pub kind: AggregateKind,
    pub table: &'static str,
    /// Every column, key first. `version` is the sequence of the last event applied.
    pub columns: &'static [&'static str],
}

impl ViewTable {
    /// The key column: the aggregate's id.
    pub fn key(&self) -> &'static str {
        self.columns[0]
    }
}

pub const ACCOUNTS: ViewTable = ViewTable {
    kind: AggregateKind::Account,
    table: "accounts_view",
    columns: &["account_id", "nickname", "closed", "version"],
};

pub const CATEGORIES: ViewTable = ViewTable {
    kind: AggregateKind::Category,
    table: "categories_view",
    columns: &[
        "category_id",
        "name",
        "description",
        "post_count",
        "created_at",
        "version",
    ],
};

pub const POSTS: ViewTable = ViewTable {
    kind: AggregateKind::Post,
    table: "posts_view",
    columns: &[
        "post_id",
        "category_id",
        "author_id",
        "title",
        "content",
        "comment_count",
        "created_at",
        "updated_at",
        "deleted",
        "version",
    ],
};

pub const COMMENTS: ViewTable = ViewTable {
    kind: AggregateKind::Comment,
    table: "comments_view",
    columns: &[
        "comment_id",
        "post_id",
        "author_id",
        "content",
        "created_at",
        "deleted",
        "version",
    ],
};

/// Every view table.
pub const ALL: [ViewTable; 4] = [ACCOUNTS, CATEGORIES, POSTS, COMMENTS];

/// The view of `kind`'s aggregates.
pub fn of(kind: AggregateKind) -> &'static ViewTable {
    match kind {
        AggregateKind::Account => &ACCOUNTS,
        AggregateKind::Category => &CATEGORIES,
        AggregateKind::Post => &POSTS,
        AggregateKind::Comment => &COMMENTS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_one_view_keyed_by_its_id() {
        for kind in AggregateKind::ALL {
            let view = of(kind);
            assert_eq!(view.kind, kind);
            assert_eq!(view.key(), format!("{kind}_id"));
            assert_eq!(view.columns.last(), Some(&"version"));
        }
        assert_eq!(ALL.map(|v| v.kind), AggregateKind::ALL);
    }
}
