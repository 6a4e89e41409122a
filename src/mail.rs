//! Outgoing mail: SMTP for deployments, or a folder of plain-text messages for development
//! and tests, where a person or a test reads the verification link.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use crate::config::{Config, MailTransport};

#[derive(Clone)]
pub enum Mailer {
    /// Writes each message to `<dir>/<uuid>.eml` as plain headers and an unencoded body,
    /// so links read (and copy) as they are.
    Folder { dir: PathBuf, from: Mailbox },
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        /// The longest one send may take (`MAIL_TIMEOUT`).
        timeout: Duration,
    },
}

impl Mailer {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let from: Mailbox = config.mail_from.parse().context("MAIL_FROM")?;
        Ok(match config.mail_transport {
            MailTransport::File => Self::Folder {
                dir: config.mail_dir.clone(),
                from,
            },
            MailTransport::Smtp => {
                let url = config.smtp_url.as_ref().context("SMTP_URL is not set")?;
                let timeout = config.mail_timeout;
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .context("SMTP_URL")?
                    .timeout(Some(timeout))
                    .build();
                Self::Smtp {
                    transport,
                    from,
                    timeout,
                }
            }
        })
    }

    pub async fn send(&self, to: &str, subject: &str, body: String) -> anyhow::Result<()> {
        let recipient: Mailbox = to.parse().context("recipient address")?;
        match self {
            Self::Folder { dir, from } => {
                let text = format!(
                    "From: {from}\nTo: {recipient}\nSubject: {subject}\nDate: {}\n\n{body}",
                    chrono::Utc::now().to_rfc2822()
                );
                tokio::fs::create_dir_all(dir).await?;
                // Write then rename, so a reader never sees half a message.
                let name = Uuid::now_v7();
                let partial = dir.join(format!(".{name}.partial"));
                tokio::fs::write(&partial, text).await?;
                tokio::fs::rename(&partial, dir.join(format!("{name}.eml"))).await?;
            }
            Self::Smtp {
                transport,
                from,
                timeout,
            } => {
                let message = Message::builder()
                    .from(from.clone())
                    .to(recipient)
                    .subject(subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(body)?;
                // lettre's own timeout bounds the connection only: a server that accepts
                // and then stalls would hold the send (and a sign-up waiting on it) for ever.
                tokio::time::timeout(*timeout, transport.send(message))
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!("the SMTP server took longer than {timeout:?}")
                    })??;
            }
        }
        Ok(())
    }
}
