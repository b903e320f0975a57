//! The Mailer the embedded default uses when no SMTP server is configured: each message is
//! written as an `.eml` file (owner-only) into a directory, where a developer opens it.

use async_trait::async_trait;
use domain::mailer::{Mail, MailError, Mailer};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct FileMailer {
    dir: PathBuf,
    from: String,
}

impl FileMailer {
    pub fn new(dir: impl Into<PathBuf>, from: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            from: from.into(),
        }
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |e: std::io::Error| MailError::transient(e.to_string());
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let path = self.dir.join(format!("{}.eml", mail.id));
        let text = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\n\r\n{}",
            self.from,
            mail.to,
            mail.subject,
            chrono::Utc::now().to_rfc2822(),
            mail.body
        );
        // Named by the mail's id: a message sent again is already there.
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        file.write_all(text.as_bytes()).map_err(io)?;
        tracing::info!(mail.file = %path.display(), "e-mail written (no SMTP server configured)");
        Ok(())
    }
}
