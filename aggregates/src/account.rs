//! Accounts: registration, email verification, promotion to admin, the release of a
//! sign-up nobody verified, password resets and closing.
//!
//! The password is not here: only a hash is kept, outside the event stream, so that no event
//! ever carries it. Email uniqueness across accounts is enforced by the account service (a
//! claim on the address, taken before `AccountRegistered` is recorded, since the event
//! carries the address sealed), not by this aggregate, which sees one account at a time.
//!
//! A sign-up owns its email only once verified. Until then a new sign-up for the same
//! address replaces it, and one whose link expired is released by the purge: either way
//! `SignUpReleased` frees the address (the event store's claim goes with it) and the
//! account is over. Only an unverified account can be released, so a verification that
//! races a replacement leaves exactly one winner (the event store's version check).

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::decide::{decide_and_record, Decide};
use crate::{rules, DomainError, Role, EVENT_VERSION_1};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountCommand {
    Register {
        email: String,
        nickname: String,
    },
    Verify,
    Promote,
    /// Gives up the email of a sign-up that was never verified.
    Release {
        reason: ReleaseReason,
    },
    /// Records a password set through a mailed reset link; the link proved the mailbox,
    /// so an unverified account becomes verified.
    ResetPassword,
    /// Closes the account at its owner's request: it frees its email and accepts no
    /// command after this.
    Close,
}

/// Why a sign-up that was never verified gave up its email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseReason {
    /// A new sign-up for the same address took it over.
    Replaced,
    /// Its verification link expired unused.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    /// `email` is normalized (lowercase); `nickname` is trimmed.
    AccountRegistered {
        email: String,
        nickname: String,
    },
    AccountVerified {},
    AccountPromoted {
        role: Role,
    },
    /// The sign-up was never verified and gave its email up; the account is over.
    SignUpReleased {
        reason: ReleaseReason,
    },
    /// The password was set through a reset link (the hash itself is kept outside the
    /// events, like every password).
    PasswordReset {},
    /// The owner closed the account. Its posts and comments stay, shown as a closed
    /// account's; its address is free again.
    AccountClosed {},
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AccountRegistered { .. } => "AccountRegistered",
            Self::AccountVerified {} => "AccountVerified",
            Self::AccountPromoted { .. } => "AccountPromoted",
            Self::SignUpReleased { .. } => "SignUpReleased",
            Self::PasswordReset {} => "PasswordReset",
            Self::AccountClosed {} => "AccountClosed",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_string()
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub registered: bool,
    pub email: String,
    pub nickname: String,
    pub verified: bool,
    pub role: Role,
    /// Released sign-ups keep their history but hold no email and accept no command.
    pub released: bool,
    /// Closed accounts likewise.
    pub closed: bool,
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: AccountCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        decide_and_record(self, command, sink).await
    }

    fn apply(&mut self, event: AccountEvent) {
        match event {
            AccountEvent::AccountRegistered { email, nickname } => {
                self.registered = true;
                self.email = email;
                self.nickname = nickname;
            }
            AccountEvent::AccountVerified {} => self.verified = true,
            AccountEvent::AccountPromoted { role } => self.role = role,
            AccountEvent::SignUpReleased { .. } => self.released = true,
            AccountEvent::PasswordReset {} => {}
            AccountEvent::AccountClosed {} => self.closed = true,
        }
    }
}

impl Decide for Account {
    fn decide(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, DomainError> {
        match command {
            AccountCommand::Register { email, nickname } => {
                let errors = rules::collect([rules::email(&email), rules::nickname(&nickname)]);
                if !errors.is_empty() {
                    return Err(DomainError::Invalid(errors));
                }
                let email = rules::normalize_email(&email);
                let nickname = nickname.trim().to_string();
                if self.released || self.closed {
                    return Err(DomainError::AlreadyExists("account"));
                }
                if self.registered {
                    // A retried registration (same id, same data) is a no-op, not a conflict.
                    return if self.email == email && self.nickname == nickname {
                        Ok(vec![])
                    } else {
                        Err(DomainError::AlreadyExists("account"))
                    };
                }
                Ok(vec![AccountEvent::AccountRegistered { email, nickname }])
            }
            AccountCommand::Verify => {
                self.require_registered()?;
                Ok(if self.verified {
                    vec![]
                } else {
                    vec![AccountEvent::AccountVerified {}]
                })
            }
            AccountCommand::Promote => {
                self.require_registered()?;
                Ok(if self.role == Role::Admin {
                    vec![]
                } else {
                    vec![AccountEvent::AccountPromoted { role: Role::Admin }]
                })
            }
            AccountCommand::Release { reason } => {
                self.require_registered()?;
                if self.verified {
                    return Err(DomainError::Forbidden("a verified account keeps its email"));
                }
                Ok(vec![AccountEvent::SignUpReleased { reason }])
            }
            AccountCommand::ResetPassword => {
                self.require_registered()?;
                let mut events = Vec::with_capacity(2);
                if !self.verified {
                    events.push(AccountEvent::AccountVerified {});
                }
                events.push(AccountEvent::PasswordReset {});
                Ok(events)
            }
            AccountCommand::Close => {
                self.require_registered()?;
                Ok(vec![AccountEvent::AccountClosed {}])
            }
        }
    }
}

impl Account {
    /// A live account: registered, neither released nor closed.
    pub fn is_live(&self) -> bool {
        self.registered && !self.released && !self.closed
    }

    fn require_registered(&self) -> Result<(), DomainError> {
        if self.is_live() {
            Ok(())
        } else {
            Err(DomainError::NotFound("account"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::after;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Account>;

    fn registered() -> AccountEvent {
        AccountEvent::AccountRegistered {
            email: "ann@example.com".into(),
            nickname: "ann".into(),
        }
    }

    fn register(email: &str, nickname: &str) -> AccountCommand {
        AccountCommand::Register {
            email: email.into(),
            nickname: nickname.into(),
        }
    }

    #[tokio::test]
    async fn register_normalizes_email_and_trims_nickname() {
        Given::with(())
            .given_no_previous_events()
            .when_async(register("Ann@Example.COM", "  ann "))
            .await
            .then_expect_events(vec![registered()]);
    }

    #[tokio::test]
    async fn register_names_every_bad_field() {
        let result = Given::with(())
            .given_no_previous_events()
            .when_async(register("not-an-email", " x "))
            .await
            .inspect_result();
        let Err(DomainError::Invalid(errors)) = result else {
            panic!("expected invalid input, got {result:?}");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["email", "nickname"]);
    }

    #[tokio::test]
    async fn register_retried_with_same_data_records_nothing() {
        Given::with(())
            .given(vec![registered()])
            .when_async(register("ann@example.com", "ann"))
            .await
            .then_expect_events(vec![]);
    }

    #[tokio::test]
    async fn register_over_an_account_with_other_data_is_refused() {
        Given::with(())
            .given(vec![registered()])
            .when_async(register("bob@example.com", "bob"))
            .await
            .then_expect_error(DomainError::AlreadyExists("account"));
    }

    #[tokio::test]
    async fn verify_marks_the_account_verified_once() {
        Given::with(())
            .given(vec![registered()])
            .when_async(AccountCommand::Verify)
            .await
            .then_expect_events(vec![AccountEvent::AccountVerified {}]);
        Given::with(())
            .given(vec![registered(), AccountEvent::AccountVerified {}])
            .when_async(AccountCommand::Verify)
            .await
            .then_expect_events(vec![]);
    }

    #[tokio::test]
    async fn verify_of_unknown_account_is_not_found() {
        Given::with(())
            .given_no_previous_events()
            .when_async(AccountCommand::Verify)
            .await
            .then_expect_error(DomainError::NotFound("account"));
    }

    #[tokio::test]
    async fn promote_makes_an_admin_once() {
        Given::with(())
            .given(vec![registered()])
            .when_async(AccountCommand::Promote)
            .await
            .then_expect_events(vec![AccountEvent::AccountPromoted { role: Role::Admin }]);
        Given::with(())
            .given(vec![
                registered(),
                AccountEvent::AccountPromoted { role: Role::Admin },
            ])
            .when_async(AccountCommand::Promote)
            .await
            .then_expect_events(vec![]);
    }

    #[tokio::test]
    async fn promote_of_unknown_account_is_not_found() {
        Given::with(())
            .given_no_previous_events()
            .when_async(AccountCommand::Promote)
            .await
            .then_expect_error(DomainError::NotFound("account"));
    }

    fn released() -> AccountEvent {
        AccountEvent::SignUpReleased {
            reason: ReleaseReason::Replaced,
        }
    }

    #[tokio::test]
    async fn an_unverified_sign_up_can_be_released_once() {
        Given::with(())
            .given(vec![registered()])
            .when_async(AccountCommand::Release {
                reason: ReleaseReason::Expired,
            })
            .await
            .then_expect_events(vec![AccountEvent::SignUpReleased {
                reason: ReleaseReason::Expired,
            }]);
        Given::with(())
            .given(vec![registered(), released()])
            .when_async(AccountCommand::Release {
                reason: ReleaseReason::Replaced,
            })
            .await
            .then_expect_error(DomainError::NotFound("account"));
    }

    #[tokio::test]
    async fn a_verified_account_keeps_its_email() {
        Given::with(())
            .given(vec![registered(), AccountEvent::AccountVerified {}])
            .when_async(AccountCommand::Release {
                reason: ReleaseReason::Replaced,
            })
            .await
            .then_expect_error(DomainError::Forbidden("a verified account keeps its email"));
    }

    #[tokio::test]
    async fn a_released_sign_up_accepts_no_command() {
        for command in [
            AccountCommand::Verify,
            AccountCommand::Promote,
            AccountCommand::ResetPassword,
        ] {
            Given::with(())
                .given(vec![registered(), released()])
                .when_async(command)
                .await
                .then_expect_error(DomainError::NotFound("account"));
        }
        Given::with(())
            .given(vec![registered(), released()])
            .when_async(register("ann@example.com", "ann"))
            .await
            .then_expect_error(DomainError::AlreadyExists("account"));
    }

    #[tokio::test]
    async fn a_closed_account_accepts_no_command() {
        let closed = vec![
            registered(),
            AccountEvent::AccountVerified {},
            AccountEvent::AccountClosed {},
        ];
        Given::with(())
            .given(closed[..2].to_vec())
            .when_async(AccountCommand::Close)
            .await
            .then_expect_events(vec![AccountEvent::AccountClosed {}]);
        for command in [
            AccountCommand::Close,
            AccountCommand::Promote,
            AccountCommand::ResetPassword,
            AccountCommand::Release {
                reason: ReleaseReason::Replaced,
            },
        ] {
            Given::with(())
                .given(closed.clone())
                .when_async(command)
                .await
                .then_expect_error(DomainError::NotFound("account"));
        }
    }

    #[tokio::test]
    async fn a_password_reset_verifies_an_unverified_account() {
        Given::with(())
            .given(vec![registered()])
            .when_async(AccountCommand::ResetPassword)
            .await
            .then_expect_events(vec![
                AccountEvent::AccountVerified {},
                AccountEvent::PasswordReset {},
            ]);
        Given::with(())
            .given(vec![registered(), AccountEvent::AccountVerified {}])
            .when_async(AccountCommand::ResetPassword)
            .await
            .then_expect_events(vec![AccountEvent::PasswordReset {}]);
    }

    // `decide` on its own: which rule answers first, and what a repeat is compared on.

    #[test]
    fn a_repeat_is_compared_after_normalizing() {
        let account: Account = after([registered()]);
        assert_eq!(
            account.decide(register("ANN@example.com", " ann ")),
            Ok(vec![])
        );
    }

    #[test]
    fn bad_fields_are_reported_before_an_existing_account() {
        let account: Account = after([registered()]);
        let result = account.decide(register("not-an-email", "ann"));
        assert!(matches!(result, Err(DomainError::Invalid(_))), "{result:?}");
    }
}
