//! The tables as rows in memory, for the fold's tests: what [`Rows::load`] and
//! [`Rows::write`] do, without a database. `db` is a [`Rows`] whose rows stand for the
//! tables' (its `loaded_*` stay empty); its quarantine stands for `quarantined_events`,
//! its `added` being the table's rows and `held` their keys.

use std::collections::{BTreeMap, BTreeSet};

use super::{changed, Aggregate, Quarantine, Rows, View};

impl Rows {
    /// What [`Rows::load`] does, from `db`: a row `db` lacks loads as the placeholder that
    /// `INSERT IGNORE` makes, every column at its default.
    pub fn load_from(&mut self, db: &Rows, view: View, ids: &BTreeSet<String>) {
        for id in ids {
            if !self.copy(db, view, id) {
                let mut placeholder = Rows::default();
                placeholder.placeholder(view, id);
                self.copy(&placeholder, view, id);
            }
        }
    }

    /// What [`Rows::write`] does, into `db`: the rows that changed since they were loaded
    /// replace `db`'s, and the quarantine's changes are made. Returns the view rows
    /// written, in the order `write` writes them.
    pub fn write_into(&self, db: &mut Rows) -> Vec<(View, String)> {
        self.quarantine.write_into(&mut db.quarantine);
        let mut written = Vec::new();
        let accounts = changed(&self.accounts, &self.loaded_accounts);
        store(View::Accounts, accounts, &mut db.accounts, &mut written);
        let categories = changed(&self.categories, &self.loaded_categories);
        store(
            View::Categories,
            categories,
            &mut db.categories,
            &mut written,
        );
        let posts = changed(&self.posts, &self.loaded_posts);
        store(View::Posts, posts, &mut db.posts, &mut written);
        let comments = changed(&self.comments, &self.loaded_comments);
        store(View::Comments, comments, &mut db.comments, &mut written);
        written
    }

    /// The rows the fold made without their having been loaded, so without their lock:
    /// writing them back could overwrite another applier's change.
    pub fn not_loaded(&self) -> Vec<(View, String)> {
        let mut missing = Vec::new();
        unloaded(
            View::Accounts,
            &self.accounts,
            &self.loaded_accounts,
            &mut missing,
        );
        unloaded(
            View::Categories,
            &self.categories,
            &self.loaded_categories,
            &mut missing,
        );
        unloaded(View::Posts, &self.posts, &self.loaded_posts, &mut missing);
        unloaded(
            View::Comments,
            &self.comments,
            &self.loaded_comments,
            &mut missing,
        );
        missing
    }
}

fn store<T: Clone>(
    view: View,
    changed: Vec<(&String, &T)>,
    db: &mut BTreeMap<String, T>,
    written: &mut Vec<(View, String)>,
) {
    for (id, row) in changed {
        db.insert(id.clone(), row.clone());
        written.push((view, id.clone()));
    }
}

fn unloaded<T>(
    view: View,
    rows: &BTreeMap<String, T>,
    loaded: &BTreeMap<String, T>,
    missing: &mut Vec<(View, String)>,
) {
    let ids = rows.keys().filter(|id| !loaded.contains_key(*id));
    missing.extend(ids.map(|id| (view, id.clone())));
}

impl Quarantine {
    /// What [`Quarantine::load`] does, from `table`.
    pub fn load_from(&mut self, table: &Quarantine, aggregates: &BTreeSet<Aggregate>) {
        for aggregate in aggregates {
            if let Some(held) = table.held.get(aggregate) {
                self.held.insert(aggregate.clone(), held.clone());
            }
        }
        self.loaded.extend(aggregates.iter().cloned());
    }

    /// What [`Quarantine::write`] does, into `table`: deletes what was released, then
    /// inserts what was added (twice the same key fails, as the primary key would).
    pub fn write_into(&self, table: &mut Quarantine) {
        for (aggregate, through) in &self.released {
            table.added.retain(|row| {
                let envelope = &row.envelope;
                let of_aggregate = envelope.aggregate_type == aggregate.0.as_str()
                    && envelope.aggregate_id == aggregate.1;
                !(of_aggregate && envelope.sequence <= *through)
            });
            if let Some(held) = table.held.get_mut(aggregate) {
                held.retain(|sequence| sequence > through);
                if held.is_empty() {
                    table.held.remove(aggregate);
                }
            }
        }
        for row in &self.added {
            let envelope = &row.envelope;
            let kind = envelope.aggregate_type.parse().expect("a followed kind");
            let aggregate = (kind, envelope.aggregate_id.clone());
            assert!(
                table
                    .held
                    .entry(aggregate)
                    .or_default()
                    .insert(envelope.sequence),
                "sequence {} of {} {} is in quarantine twice",
                envelope.sequence,
                envelope.aggregate_type,
                envelope.aggregate_id,
            );
            table.added.push(row.clone());
        }
    }

    /// The table's rows, in the order they were inserted.
    pub fn rows(&self) -> &[super::Quarantined] {
        &self.added
    }
}
