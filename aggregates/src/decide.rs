//! The one shape of every aggregate: a pure decision, then its recording.
//!
//! An aggregate decides on its own state and the command, nothing else. Facts about other
//! aggregates (does the category exist? is the post live?) are looked up by the
//! application before it sends the command, and travel in it (see [`crate::facts`]). So
//! a decision is a plain function, tested without a store or a runtime, and every
//! aggregate's cqrs-es `handle` is the same one line: [`decide_and_record`].

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

use crate::DomainError;

pub trait Decide: Aggregate<Error = DomainError> {
    /// The events `command` records on this state (none for a repeat that would change
    /// nothing), or why it is refused.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, DomainError>;
}

/// The body of every aggregate's `Aggregate::handle`: decide, then write the events to the
/// sink, which applies each to the aggregate as it goes.
pub(crate) async fn decide_and_record<A: Decide>(
    aggregate: &mut A,
    command: A::Command,
    sink: &EventSink<A>,
) -> Result<(), DomainError> {
    for event in aggregate.decide(command)? {
        sink.write(event, aggregate).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{Account, AccountCommand, AccountEvent};

    fn register() -> AccountCommand {
        AccountCommand::Register {
            email: "ann@example.com".into(),
            nickname: "ann".into(),
        }
    }

    #[tokio::test]
    async fn records_what_decide_returns_and_applies_it() {
        let mut account = Account::default();
        let decided = account.decide(register()).unwrap();
        let sink = EventSink::default();
        decide_and_record(&mut account, register(), &sink)
            .await
            .unwrap();
        assert_eq!(sink.collect().await, decided);
        assert!(
            account.registered,
            "the sink applies each event it is given"
        );
    }

    #[tokio::test]
    async fn a_refused_command_records_nothing() {
        let mut account = Account::default();
        let sink = EventSink::default();
        let result = decide_and_record(&mut account, AccountCommand::Verify, &sink).await;
        assert_eq!(result, Err(DomainError::NotFound("account")));
        assert_eq!(sink.collect().await, Vec::<AccountEvent>::new());
        assert_eq!(account, Account::default());
    }
}
