//! The intake's local spool: an append-only, fsynced log of events Kafka could not
//! take, replayed in order once it can.
//!
//! Segments are files `NNNNNNNNNNNN.jsonl` (one event per line) in the spool folder.
//! Appends go to the open segment and are `fsync`ed before the intake answers 202.
//! The replayer seals the open segment, then sends closed segments oldest first and
//! deletes each only after Kafka acknowledged all of its events; a partly sent
//! segment is sent again whole (consumers deduplicate by event id).
//!
//! A spool belongs to one host: the folder is locked (`.lock`, an exclusive file lock
//! the OS drops when the process dies) while a host has it open, so a second host
//! given the same folder refuses to start instead of replaying, and deleting, segments
//! the first is still writing.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use cinema_domain::ugc::UgcEvent;

/// The spool folder and its open segment.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    open: Option<(u64, File)>,
    /// Held while the spool is open (see the module docs).
    _lock: File,
}

/// The lock file in a spool folder.
const LOCK_FILE: &str = ".lock";

impl Spool {
    /// Opens (creating) the spool folder; segments left by an earlier run are kept.
    /// Fails when another process has the folder open.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ResourceBusy,
                    format!(
                        "the spool folder {} is in use by another cinema process; give each host its own --spool-dir",
                        dir.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(error),
        }
        Ok(Self {
            dir: dir.to_owned(),
            open: None,
            _lock: lock,
        })
    }

    fn segments(&self) -> std::io::Result<Vec<(u64, PathBuf)>> {
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let sequence = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(sequence) = sequence {
                segments.push((sequence, path));
            }
        }
        segments.sort();
        Ok(segments)
    }

    /// Whether any event waits in the spool.
    pub fn is_empty(&self) -> std::io::Result<bool> {
        Ok(self.open.is_none() && self.segments()?.is_empty())
    }

    /// Appends events durably (written and fsynced) to the open segment.
    pub fn append(&mut self, events: &[UgcEvent]) -> std::io::Result<()> {
        if self.open.is_none() {
            let next = self
                .segments()?
                .last()
                .map_or(1, |(sequence, _)| sequence + 1);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("{next:012}.jsonl")))?;
            self.open = Some((next, file));
        }
        let Some((_, file)) = self.open.as_mut() else {
            return Err(std::io::Error::other("spool segment not open"));
        };
        let mut buffer = Vec::with_capacity(events.len() * 256);
        for event in events {
            serde_json::to_writer(&mut buffer, event)?;
            buffer.push(b'\n');
        }
        file.write_all(&buffer)?;
        file.sync_data()
    }

    /// Closes the open segment so the replayer may take it; returns the sealed
    /// segments, oldest first.
    pub fn seal(&mut self) -> std::io::Result<Vec<PathBuf>> {
        self.open = None;
        Ok(self.segments()?.into_iter().map(|(_, path)| path).collect())
    }
}

/// Reads a sealed segment's events (a torn last line from a crash is skipped).
pub fn read_segment(path: &Path) -> std::io::Result<Vec<UgcEvent>> {
    let mut events = Vec::new();
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        match serde_json::from_str(&line) {
            Ok(event) => events.push(event),
            Err(error) => {
                tracing::warn!(%error, segment = %path.display(), "intake: skipping a torn spool line");
            }
        }
    }
    Ok(events)
}
