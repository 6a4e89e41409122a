//! The four kinds of aggregate, named once.
//!
//! The event store, the envelope on Kafka, `Event-Position` headers and the command line
//! all carry an aggregate's kind as text (`post`); code that branches on it parses it into
//! an [`AggregateKind`] first, so a misspelt kind cannot compile and a new one cannot be
//! forgotten in a `match`.

use std::fmt;
use std::str::FromStr;

use cqrs_es::Aggregate;

use crate::account::Account;
use crate::category::Category;
use crate::comment::Comment;
use crate::post::Post;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AggregateKind {
    Account,
    Category,
    Post,
    Comment,
}

impl AggregateKind {
    pub const ALL: [Self; 4] = [Self::Account, Self::Category, Self::Post, Self::Comment];

    /// The name the event store records (each aggregate's `Aggregate::TYPE`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Account => Account::TYPE,
            Self::Category => Category::TYPE,
            Self::Post => Post::TYPE,
            Self::Comment => Comment::TYPE,
        }
    }
}

impl fmt::Display for AggregateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An aggregate kind nobody defined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown aggregate type `{0}` (account, category, post, comment)")]
pub struct UnknownKind(pub String);

impl FromStr for AggregateKind {
    type Err = UnknownKind;

    fn from_str(text: &str) -> Result<Self, UnknownKind> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| UnknownKind(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in AggregateKind::ALL {
            assert_eq!(kind.as_str().parse::<AggregateKind>(), Ok(kind));
        }
        assert_eq!(AggregateKind::Post.to_string(), "post");
        assert_eq!(
            "posts".parse::<AggregateKind>(),
            Err(UnknownKind("posts".into()))
        );
    }
}
