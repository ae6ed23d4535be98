//! A real SMTP server process (Python's aiosmtpd, writing a Maildir) on loopback, for
//! the mail tests; `make test` installs aiosmtpd.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{TempDir, free_port};

/// aiosmtpd on a fixed loopback port, delivering into a Maildir; restartable.
pub struct Smtp {
    pub port: u16,
    maildir: TempDir,
    child: Option<Child>,
}

impl Smtp {
    pub fn start() -> Self {
        let mut smtp = Self {
            port: free_port(),
            maildir: TempDir::new("maildir"),
            child: None,
        };
        smtp.restart();
        smtp
    }

    pub fn restart(&mut self) {
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
            ])
            .args(["-c", "aiosmtpd.handlers.Mailbox", &self.maildir_path()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd (`make test` installs it: pip install aiosmtpd)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("aiosmtpd did not listen on {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The Maildir itself: a folder aiosmtpd creates inside the temporary one.
    pub fn maildir_path(&self) -> String {
        format!("{}/box", self.maildir.path())
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail received: `to`, decoded `subject`, `message_id`, `text` and `html`.
    pub fn mails(&self) -> Vec<Value> {
        let script = r#"
import sys, os, json, mailbox, email.policy
out = []
box = mailbox.Maildir(sys.argv[1], factory=None, create=False) if os.path.isdir(os.path.join(sys.argv[1], "new")) else None
for key in (sorted(box.keys()) if box is not None else []):
    msg = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
    text = msg.get_body(preferencelist=('plain',))
    html = msg.get_body(preferencelist=('html',))
    out.append({"to": str(msg["To"]), "subject": str(msg["Subject"]),
                "message_id": str(msg["Message-ID"]),
                "list_unsubscribe": msg["List-Unsubscribe"] and str(msg["List-Unsubscribe"]),
                "list_unsubscribe_post": msg["List-Unsubscribe-Post"] and str(msg["List-Unsubscribe-Post"]),
                "text": text.get_content() if text else "", "html": html.get_content() if html else ""})
print(json.dumps(out))
"#;
        let output = Command::new("python3")
            .args(["-c", script, &self.maildir_path()])
            .output()
            .expect("read the maildir");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("mails as JSON")
    }

    /// Waits until mails to `to` number `count`, and answers them.
    pub async fn wait_for(&self, to: &str, count: usize, within: Duration) -> Vec<Value> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let mine: Vec<Value> = self.mails().into_iter().filter(|m| m["to"] == to).collect();
            if mine.len() >= count || std::time::Instant::now() > deadline {
                assert_eq!(
                    mine.len(),
                    count,
                    "mails to {to} within {within:?}: {mine:?}"
                );
                return mine;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop();
    }
}
