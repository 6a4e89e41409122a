//! The tables as rows in memory, for the fold's tests: what [`Rows::load`] and
//! [`Rows::write`] do, without a database. `db` is a [`Rows`] whose rows stand for the
//! tables' (its `loaded_*` stay empty).

use std::collections::{BTreeMap, BTreeSet};

use super::{changed, Rows, View};

impl Rows {
    /// What [`Rows::load`] does, from `db`: a row `db` lacks loads as the placeholder that
    /// `INSERT IGNORE` makes, every column at its default.
    pub fn load_from(&mut self, db: &Rows, view: View, ids: &BTreeSet<String>) {
        match view {
            View::Accounts => load(
                &mut self.accounts,
                &mut self.loaded_accounts,
                &db.accounts,
                ids,
            ),
            View::Categories => load(
                &mut self.categories,
                &mut self.loaded_categories,
                &db.categories,
                ids,
            ),
            View::Posts => load(&mut self.posts, &mut self.loaded_posts, &db.posts, ids),
            View::Comments => load(
                &mut self.comments,
                &mut self.loaded_comments,
                &db.comments,
                ids,
            ),
        }
    }

    /// What [`Rows::write`] does, into `db`: the rows that changed since they were loaded
    /// replace `db`'s. Returns them, in the order `write` writes them.
    pub fn write_into(&self, db: &mut Rows) -> Vec<(View, String)> {
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

fn load<T: Clone + Default>(
    rows: &mut BTreeMap<String, T>,
    loaded: &mut BTreeMap<String, T>,
    db: &BTreeMap<String, T>,
    ids: &BTreeSet<String>,
) {
    for id in ids {
        let row = db.get(id).cloned().unwrap_or_default();
        loaded.insert(id.clone(), row.clone());
        rows.insert(id.clone(), row);
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
