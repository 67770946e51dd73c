//! The write-ahead log: every batch of writes is appended here and fsynced before the write is
//! acknowledged, so a crash never loses an acknowledged write. After a restart [`replay`]
//! reads the log back, in order, to rebuild the in-memory series map; once the engine has
//! written a segment covering a prefix of the log it deletes those files with
//! [`Wal::remove_files_before`].
//!
//! # Files
//!
//! A WAL directory holds files named `wal-{id:016}.log`, ids increasing from 1. [`Wal::open`]
//! always starts a new file (one past the largest id present) and never appends to an old one,
//! so a file that a crash left torn is never written again. [`Wal::rotate`] closes the current
//! file and starts the next. Call [`replay`] before [`Wal::open`]: replay treats a bad tail as
//! torn (and truncates it) only in the newest file.
//!
//! # On-disk format (version 3)
//!
//! Integers are little-endian. Byte ranges count from the start of the header or record and
//! include both ends.
//!
//! File header, 8 bytes:
//! 1. magic `MTWL` [4 bytes, 0..=3]
//! 2. format version u16, currently 3 [2 bytes, 4..=5]; versions 1 (keys `device|metric`)
//!    and 2 (every entry with its whole key) are still read
//! 3. reserved u16, written as zero, ignored when read [2 bytes, 6..=7]
//!
//! Then records back to back; one record holds the entries of one [`Wal::append`] call:
//! 1. record marker u32 `0xE71A9CB5` [4 bytes, 0..=3]: lets recovery find the next record
//!    after a corrupt one
//! 2. payload length u32, at most [`MAX_RECORD_LEN`] [4 bytes, 4..=7]
//! 3. CRC-32 (IEEE) u32 of bytes 4..=7 followed by the payload [4 bytes, 8..=11]
//! 4. payload [length bytes, 12..=11+length]: entries back to back, each starting with its
//!    type u8 [1 byte]:
//!    - 3, points of a series named here: series number u32 [4 bytes], series key length
//!      u16 [2 bytes], the key in its stored form ([`series_key`](crate::storage::series_key)),
//!      point count u32 [4 bytes], then per point the timestamp i64 milliseconds [8 bytes]
//!      and the value as f64 bits [8 bytes]. From this entry on, in this file, the number
//!      stands for the key until an entry of type 3 gives it another.
//!    - 4, points of a numbered series: series number u32 [4 bytes], point count and points
//!      as in type 3. The number must be defined by an earlier entry of the same file.
//!    - 2, delete series: series key length u16 [2 bytes], the key.
//!    - 1 (versions 1 and 2 only, still read): points with the whole key: key length u16,
//!      key, point count and points as in type 3.
//!
//! Numbering a series once per file is what keeps the log small when batches hold many
//! series of few points each (a Telegraf flush: one point per series): a labelled key is
//! ~100 bytes, a number 4. The writer starts numbering afresh (every key whole again) at
//! every new file, after a failed write, and after [`SERIES_IDS_SPAN_BYTES`] of records, so
//! a corrupt record in the middle of a file (see Recovery) can make the records after it
//! unreadable only up to there; each such record is reported like any corrupt one.
//!
//! # Group commit
//!
//! [`Wal::append`] only encodes the record into a pending buffer and returns its sequence
//! number. [`Wal::wait_durable`] makes it durable without a dedicated thread: the first waiter
//! that finds no sync running becomes the leader, takes the whole pending buffer, writes and
//! fdatasyncs it with the lock released, then wakes everyone; waiters that arrive meanwhile
//! sleep and are usually covered by the leader's sync or the next one. Many concurrent writers
//! thus share one fsync.
//!
//! # Write failures
//!
//! A failed write or sync (a full disk, an I/O error) stops the log: every record not yet
//! durable fails with the error (its caller must not apply or acknowledge it), and the file's
//! state is unknown. The next [`Wal::append`] (or [`Wal::recover`], which a maintenance loop
//! calls) recovers without a restart: it truncates the failed file back to its last synced
//! length, so no part of a failed record can replay, and starts a new file. Until that works
//! (the disk still full), appends fail at once with the cause.
//!
//! # Recovery
//!
//! [`replay`] reads the files in id order. A record that is cut short or fails its checksum
//! with no valid record after it in the newest file is a torn tail from a crash: the file is
//! truncated there. Any other bad record is corruption and fails replay with its file and
//! offset, unless `skip_corrupt` is set, in which case replay resyncs on the next valid record
//! marker and reports what it skipped. A record is applied only whole and only after its
//! checksum and payload check out.
//!
//! One consequence to know: a crash may persist the pages of an unsynced batch out of order,
//! leaving a bad record followed by a valid (never acknowledged) one. Replay cannot tell that
//! from bit rot and reports corruption; `skip_corrupt` recovers it.

mod record;
mod replay;
#[cfg(test)]
mod tests;

pub use self::record::*;
pub use self::replay::*;

use crate::error::{Error, Result};
use crate::metrics::Histogram;
use crate::storage::durable::sync_dir;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The leader keeps its write buffer for reuse unless it grew beyond this.
const MAX_SPARE_CAPACITY: usize = 16 << 20;

/// An open write-ahead log: appends go to the newest file of its directory.
pub struct Wal {
    dir: PathBuf,
    state: Mutex<State>,
    /// Signalled whenever a leader finishes a sync, a rotation or a recovery, successful or
    /// not.
    sync_done: Condvar,
    /// Number of fdatasyncs of record data, to see how well group commit batches.
    syncs: AtomicU64,
    /// How long each fdatasync of record data took.
    sync_latency: Histogram,
    /// Test hook: the disk fault every write (and file creation) hits until cleared.
    #[cfg(test)]
    fault: Mutex<Option<Fault>>,
}

/// A disk fault the tests inject into the log's writes.
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fault {
    /// The errno writes fail with (`libc` numbers: 28 is ENOSPC, 5 is EIO).
    pub errno: i32,
    /// Write half of the buffer before failing, as a disk that fills up mid-write does.
    pub partial: bool,
}

/// Most ranges of failed records remembered for waiters that have not looked yet. A waiter
/// that sleeps through this many separate failures would be told its record is durable.
const MAX_LOST_RANGES: usize = 1024;

struct State {
    /// Encoded records appended but not yet handed to a leader.
    pending: Vec<u8>,
    /// An emptied buffer kept to swap with `pending`, so steady state allocates nothing.
    spare: Vec<u8>,
    /// Sequence number of the last append (0 before the first).
    last_seq: u64,
    /// Every record with a sequence number up to this one is on disk and synced, except
    /// those in `lost`.
    durable_seq: u64,
    /// A leader (a syncing waiter, `rotate` or a recovery) owns the active file and is doing
    /// I/O.
    syncing: bool,
    /// The file records go to; `None` while a leader holds it or while the log is stopped.
    active: Option<ActiveFile>,
    active_id: u64,
    /// Bytes on disk of every WAL file in the directory, by id (for the file a write failed
    /// on: its length before that write).
    files: BTreeMap<u64, u64>,
    disk_bytes: u64,
    /// Bytes a leader has taken from `pending` and is writing.
    inflight_bytes: u64,
    /// Set by a failed write or sync: the log takes no appends until a recovery starts a new
    /// file.
    failure: Option<Failure>,
    /// Sequence ranges (inclusive) whose records failed, oldest first, each with its cause:
    /// their waiters get the error even after the log recovered.
    lost: Vec<(u64, u64, Cause)>,
    /// How the records in `pending` number their series. It describes the file `pending`
    /// will be written to, so it starts afresh whenever that may change: at a rotation and
    /// when a write fails (the records after a failure go to a new file).
    series_ids: SeriesIds,
}

struct ActiveFile {
    id: u64,
    path: PathBuf,
    file: File,
}

/// What a leader took from the state to write.
struct Batch {
    buf: Vec<u8>,
    last_seq: u64,
    active: ActiveFile,
}

/// Why records failed, kept to hand a copy to every caller that asks.
#[derive(Clone)]
struct Cause {
    path: PathBuf,
    kind: io::ErrorKind,
    message: String,
}

impl Cause {
    fn new(path: &Path, err: &io::Error) -> Cause {
        Cause {
            path: path.to_path_buf(),
            kind: err.kind(),
            message: err.to_string(),
        }
    }

    fn from_error(err: &Error) -> Cause {
        match err {
            Error::Io { path, source } => Cause::new(path, source),
            other => Cause {
                path: PathBuf::new(),
                kind: io::ErrorKind::Other,
                message: other.to_string(),
            },
        }
    }

    fn error(&self) -> Error {
        let message = format!("write-ahead log write failed: {}", self.message);
        Error::io(&self.path, io::Error::new(self.kind, message))
    }
}

/// A stopped log: what failed, and the file to cut back before writing again.
struct Failure {
    cause: Cause,
    /// Id of the file the failed write went to. Part of a failed record may be on disk
    /// there; recovery truncates the file to its last synced length so that it never
    /// replays.
    file_id: u64,
}

impl State {
    /// Hands the pending records and the active file to a leader. Callers check first that no
    /// sync runs and the log is not stopped, which is when `active` is present.
    fn start_batch(&mut self) -> Batch {
        self.syncing = true;
        let mut buf = mem::take(&mut self.spare);
        mem::swap(&mut buf, &mut self.pending);
        self.inflight_bytes = buf.len() as u64;
        let active = self
            .active
            .take()
            .expect("the active file is present while no sync runs and the log is not stopped");
        Batch {
            buf,
            last_seq: self.last_seq,
            active,
        }
    }

    fn finish_batch(&mut self, mut buf: Vec<u8>) {
        self.syncing = false;
        self.inflight_bytes = 0;
        buf.clear();
        if buf.capacity() <= MAX_SPARE_CAPACITY {
            self.spare = buf;
        }
    }

    fn add_file_bytes(&mut self, id: u64, bytes: u64) {
        *self.files.entry(id).or_default() += bytes;
        self.disk_bytes += bytes;
    }

    /// Stops the log after a failed write to file `file_id`: every record not yet durable
    /// (the failed batch and anything appended since) is lost, and its waiters get `cause`.
    fn fail(&mut self, file_id: u64, cause: Cause) {
        self.pending.clear();
        self.series_ids.reset();
        let first = self.durable_seq + 1;
        let last = self.last_seq;
        if first <= last {
            match self.lost.last_mut() {
                // No record became durable in between: one range.
                Some((_, end, c)) if *end + 1 == first => {
                    *end = last;
                    *c = cause.clone();
                }
                _ => self.lost.push((first, last, cause.clone())),
            }
            if self.lost.len() > MAX_LOST_RANGES {
                self.lost.remove(0);
            }
        }
        // Lost records count as settled, so later records can become durable.
        self.durable_seq = last;
        self.failure = Some(Failure { cause, file_id });
    }

    /// The cause, if record `seq` was lost to a failed write.
    fn lost_cause(&self, seq: u64) -> Option<&Cause> {
        // Ranges are sorted and disjoint: find the last one starting at or before `seq`.
        let i = self.lost.partition_point(|(first, _, _)| *first <= seq);
        let (_, last, cause) = self.lost.get(i.checked_sub(1)?)?;
        (seq <= *last).then_some(cause)
    }
}

impl Wal {
    /// Opens the log in `dir` (creating it if needed) and starts a new file one past the
    /// largest id present. Existing files are left as they are: run [`replay`] first.
    pub fn open(dir: &Path) -> Result<Wal> {
        Wal::open_from(dir, 1)
    }

    /// Like [`Wal::open`], but the new file's id is at least `min_file_id`: ids name segment
    /// files too, and must keep growing even if the WAL directory was emptied.
    pub fn open_from(dir: &Path, min_file_id: u64) -> Result<Wal> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut files = BTreeMap::new();
        let mut disk_bytes = 0;
        let mut next_id = 1;
        for (id, path) in list_files(dir)? {
            let len = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
            files.insert(id, len);
            disk_bytes += len;
            next_id = id
                .checked_add(1)
                .ok_or_else(|| Error::corrupt(&path, 0, "wal file id is the largest possible"))?;
        }
        let next_id = next_id.max(min_file_id);
        let active = create_file(dir, next_id)?;
        sync_dir(dir)?;
        files.insert(next_id, FILE_HEADER_LEN as u64);
        disk_bytes += FILE_HEADER_LEN as u64;
        Ok(Wal {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                pending: Vec::new(),
                spare: Vec::new(),
                last_seq: 0,
                durable_seq: 0,
                syncing: false,
                active: Some(active),
                active_id: next_id,
                files,
                disk_bytes,
                inflight_bytes: 0,
                failure: None,
                lost: Vec::new(),
                series_ids: SeriesIds::default(),
            }),
            sync_done: Condvar::new(),
            syncs: AtomicU64::new(0),
            sync_latency: Histogram::default(),
            #[cfg(test)]
            fault: Mutex::new(None),
        })
    }

    /// Encodes `entries` as one record, queues it, and returns its sequence number (from 1,
    /// per open log; not stored on disk). Does no I/O unless the log is stopped: call
    /// [`Wal::wait_durable`] before acknowledging the write (queued records wait in memory
    /// until someone does). Fails if the batch exceeds [`MAX_RECORD_LEN`], or if the log is
    /// stopped after a failed write and [`Wal::recover`] cannot start a new file yet.
    pub fn append(&self, entries: &[WalEntryRef<'_>]) -> Result<u64> {
        let mut st = self.recover_locked(self.lock())?;
        // Encoded under the lock, straight into the pending buffer: a series' number is
        // defined by the first record that uses it, so records must queue in the order
        // they were numbered.
        let State {
            pending,
            series_ids,
            ..
        } = &mut *st;
        encode_record(pending, entries, series_ids)?;
        st.last_seq += 1;
        Ok(st.last_seq)
    }

    /// Returns once the record `seq` (and every earlier one) is written and fdatasynced, or
    /// with the error that prevented it. Concurrent callers share syncs (group commit).
    pub fn wait_durable(&self, seq: u64) -> Result<()> {
        let mut st = self.lock();
        loop {
            if let Some(cause) = st.lost_cause(seq) {
                return Err(cause.error());
            }
            if st.durable_seq >= seq {
                return Ok(());
            }
            if seq > st.last_seq {
                return Err(Error::invalid(
                    "wal sequence",
                    format!("{seq} was never appended (last is {})", st.last_seq),
                ));
            }
            st = if st.syncing {
                self.wait(st)
            } else {
                self.lead_sync(st)
            };
        }
    }

    /// Makes everything appended so far durable.
    pub fn flush(&self) -> Result<()> {
        let last = self.lock().last_seq;
        self.wait_durable(last)
    }

    /// Why the log is stopped, if a write or sync failed and no recovery succeeded since.
    pub fn failure(&self) -> Option<String> {
        self.lock()
            .failure
            .as_ref()
            .map(|f| f.cause.error().to_string())
    }

    /// If the log is stopped after a failed write, cuts the file that failed back to its
    /// last synced length and starts a new file, so appends work again. Appends call this
    /// themselves; a maintenance loop calls it to notice early that the disk takes writes
    /// again. Does nothing on a healthy log.
    pub fn recover(&self) -> Result<()> {
        self.recover_locked(self.lock()).map(drop)
    }

    /// [`Wal::recover`] on a held lock: returns it once the log is not stopped, with no
    /// leader running.
    fn recover_locked<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
    ) -> Result<MutexGuard<'a, State>> {
        while st.syncing {
            st = self.wait(st);
        }
        let Some(failure) = &st.failure else {
            return Ok(st);
        };
        let failed_id = failure.file_id;
        let good_len = st.files.get(&failed_id).copied();
        let new_id = st
            .active_id
            .checked_add(1)
            .ok_or_else(|| Error::invalid("wal file id", "no id left after the current file"))?;
        // Own the log while doing I/O without the lock.
        st.syncing = true;
        drop(st);
        let cut_back = match good_len {
            Some(len) => truncate_file(&file_path(&self.dir, failed_id), len),
            None => Ok(()),
        };
        let outcome = cut_back
            .and_then(|()| self.create_file(new_id))
            .and_then(|next| match sync_dir(&self.dir) {
                Ok(()) => Ok(next),
                Err(e) => {
                    let _ = fs::remove_file(&next.path);
                    Err(e)
                }
            });
        let mut st = self.lock();
        st.syncing = false;
        self.sync_done.notify_all();
        match outcome {
            Ok(next) => {
                st.failure = None;
                st.series_ids.reset();
                st.add_file_bytes(next.id, FILE_HEADER_LEN as u64);
                st.active_id = next.id;
                st.active = Some(next);
                Ok(st)
            }
            Err(e) => {
                if let Some(failure) = &mut st.failure {
                    failure.cause = Cause::from_error(&e);
                }
                Err(e)
            }
        }
    }

    /// Makes everything appended so far durable in the current file, then starts the next file
    /// and returns its id. Every file with a smaller id is then complete; an append racing with
    /// this lands wholly in the old file or wholly in the new one.
    pub fn rotate(&self) -> Result<u64> {
        let st = self.recover_locked(self.lock())?;
        let new_id = st
            .active_id
            .checked_add(1)
            .ok_or_else(|| Error::invalid("wal file id", "no id left after the current file"))?;
        let mut st = st;
        let Batch {
            buf,
            last_seq,
            mut active,
        } = st.start_batch();
        // What is appended from now on goes to the new file (or, if creating it fails, after
        // these records in the old one): it numbers its series afresh either way.
        st.series_ids.reset();
        drop(st);

        let flushed = if buf.is_empty() {
            Ok(())
        } else {
            self.write_and_sync(&mut active.file, &buf)
        };
        // The next file is created only once the old one is complete.
        let outcome = flushed.map(|()| {
            let next = self.create_file(new_id)?;
            if let Err(e) = sync_dir(&self.dir) {
                // The new file's name may not be durable: abandon it and keep the old file.
                let _ = fs::remove_file(&next.path);
                return Err(e);
            }
            Ok(next)
        });

        let mut st = self.lock();
        let result = match outcome {
            Err(e) => {
                st.fail(active.id, Cause::new(&active.path, &e));
                Err(Error::io(&active.path, e))
            }
            Ok(created) => {
                st.durable_seq = last_seq;
                st.add_file_bytes(active.id, buf.len() as u64);
                match created {
                    Ok(next) => {
                        st.add_file_bytes(next.id, FILE_HEADER_LEN as u64);
                        st.active_id = next.id;
                        st.active = Some(next);
                        Ok(new_id)
                    }
                    // The old file stays active: the log goes on, only rotation failed.
                    Err(e) => {
                        st.active = Some(active);
                        Err(e)
                    }
                }
            }
        };
        st.finish_batch(buf);
        self.sync_done.notify_all();
        result
    }

    /// Deletes every WAL file with an id smaller than `file_id` and fsyncs the directory.
    /// `file_id` may be at most the current file's id.
    pub fn remove_files_before(&self, file_id: u64) -> Result<()> {
        let removed = {
            let mut st = self.lock();
            if file_id > st.active_id {
                return Err(Error::invalid(
                    "wal file id",
                    format!(
                        "{file_id} is past the current file {} and would delete it",
                        st.active_id
                    ),
                ));
            }
            let kept = st.files.split_off(&file_id);
            let removed = mem::replace(&mut st.files, kept);
            st.disk_bytes -= removed.values().sum::<u64>();
            removed
        };
        let mut outcome = Ok(());
        let mut not_removed = BTreeMap::new();
        for (&id, &len) in &removed {
            if outcome.is_err() {
                not_removed.insert(id, len);
                continue;
            }
            let path = file_path(&self.dir, id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    not_removed.insert(id, len);
                    outcome = Err(Error::io(&path, e));
                }
            }
        }
        if !not_removed.is_empty() {
            let mut st = self.lock();
            for (id, len) in not_removed {
                st.add_file_bytes(id, len);
            }
        }
        outcome?;
        sync_dir(&self.dir)
    }

    /// Bytes of WAL files on disk plus records not yet written. Cheap: kept as a counter.
    pub fn size_bytes(&self) -> u64 {
        let st = self.lock();
        st.disk_bytes + st.inflight_bytes + st.pending.len() as u64
    }

    /// Id of the file appends currently go to.
    pub fn current_file_id(&self) -> u64 {
        self.lock().active_id
    }

    /// The directory this log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many times record data was fdatasynced since open; fewer than appends when group
    /// commit batches.
    /// How long the fdatasyncs of record data took (group commits, not rotations).
    pub fn sync_latency(&self) -> &Histogram {
        &self.sync_latency
    }

    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The critical sections do not panic halfway through an update, so the state is
        // consistent even if another thread panicked while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&'a self, st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.sync_done
            .wait(st)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The leader's turn: write and sync everything pending with the lock released, then
    /// publish the outcome to every waiter.
    fn lead_sync<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let Batch {
            buf,
            last_seq,
            mut active,
        } = st.start_batch();
        drop(st);
        let result = self.write_and_sync(&mut active.file, &buf);
        let mut st = self.lock();
        match result {
            Ok(()) => {
                st.durable_seq = last_seq;
                st.add_file_bytes(active.id, buf.len() as u64);
                st.active = Some(active);
            }
            Err(e) => st.fail(active.id, Cause::new(&active.path, &e)),
        }
        st.finish_batch(buf);
        self.sync_done.notify_all();
        st
    }

    fn write_and_sync(&self, file: &mut File, buf: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if let Some(fault) = *self.fault.lock().unwrap_or_else(PoisonError::into_inner) {
            if fault.partial {
                file.write_all(&buf[..buf.len() / 2])?;
            }
            return Err(io::Error::from_raw_os_error(fault.errno));
        }
        file.write_all(buf)?;
        let started = std::time::Instant::now();
        file.sync_data()?;
        self.sync_latency.observe(started.elapsed());
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Creates file `id` of this log (see [`create_file`]), through the test's fault.
    fn create_file(&self, id: u64) -> Result<ActiveFile> {
        #[cfg(test)]
        if let Some(fault) = *self.fault.lock().unwrap_or_else(PoisonError::into_inner) {
            let path = file_path(&self.dir, id);
            return Err(Error::io(path, io::Error::from_raw_os_error(fault.errno)));
        }
        create_file(&self.dir, id)
    }

    /// Test hook: every later write and file creation fails with `fault` until it is set
    /// to `None` (the disk was freed).
    #[cfg(test)]
    pub(crate) fn inject_fault(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = fault;
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Records nobody waited for were never promised durable, but writing them on a clean
        // stop costs one sync and loses less. An error here has no one to go to.
        let _ = self.flush();
    }
}

/// Creates WAL file `id` with its header, synced. Never overwrites an existing file.
fn create_file(dir: &Path, id: u64) -> Result<ActiveFile> {
    let path = file_path(dir, id);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    if let Err(e) = file
        .write_all(&file_header())
        .and_then(|()| file.sync_data())
    {
        let _ = fs::remove_file(&path);
        return Err(Error::io(&path, e));
    }
    Ok(ActiveFile { id, path, file })
}
