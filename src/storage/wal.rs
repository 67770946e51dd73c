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
//! # On-disk format (version 1)
//!
//! Integers are little-endian. Byte ranges count from the start of the header or record and
//! include both ends.
//!
//! File header, 8 bytes:
//! 1. magic `MTWL` [4 bytes, 0..=3]
//! 2. format version u16, currently 1 [2 bytes, 4..=5]
//! 3. reserved u16, written as zero, ignored when read [2 bytes, 6..=7]
//!
//! Then records back to back; one record holds the entries of one [`Wal::append`] call:
//! 1. record marker u32 `0xE71A9CB5` [4 bytes, 0..=3]: lets recovery find the next record
//!    after a corrupt one
//! 2. payload length u32, at most [`MAX_RECORD_LEN`] [4 bytes, 4..=7]
//! 3. CRC-32 (IEEE) u32 of bytes 4..=7 followed by the payload [4 bytes, 8..=11]
//! 4. payload [length bytes, 12..=11+length]: entries back to back, each
//!    1. entry type u8: 1 = points, 2 = delete series [1 byte]
//!    2. series key length u16 [2 bytes]
//!    3. series key, UTF-8 `device|metric` [key length bytes]
//!    4. points only: point count u32 [4 bytes]
//!    5. points only: per point, timestamp i64 milliseconds [8 bytes] then value as f64 bits
//!       [8 bytes]
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

use crate::error::{Error, Result};
use crate::storage::{SeriesKey, Timestamp};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The first four bytes of every WAL file.
pub const FILE_MAGIC: [u8; 4] = *b"MTWL";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the file header: magic, version, reserved.
pub const FILE_HEADER_LEN: usize = 8;
/// The first four bytes of every record, chosen to be unlikely in text and small numbers.
pub const RECORD_MARKER: u32 = 0xE71A_9CB5;
/// Length of a record's header: marker, payload length, checksum.
pub const RECORD_HEADER_LEN: usize = 12;
/// Largest payload of one record (one `append` call), about 4 million points. Recovery treats a
/// larger length field as corruption.
pub const MAX_RECORD_LEN: usize = 64 << 20;
/// The leader keeps its write buffer for reuse unless it grew beyond this.
const MAX_SPARE_CAPACITY: usize = 16 << 20;

const ENTRY_POINTS: u8 = 1;
const ENTRY_DELETE_SERIES: u8 = 2;
/// Encoded size of one `(timestamp, value)` pair.
const POINT_LEN: usize = 16;

/// One logical change, as given to [`Wal::append`].
#[derive(Clone, Copy, Debug)]
pub enum WalEntryRef<'a> {
    Points {
        series: &'a SeriesKey,
        points: &'a [(Timestamp, f64)],
    },
    DeleteSeries(&'a SeriesKey),
}

/// One logical change, as read back by [`replay`].
#[derive(Clone, Debug, PartialEq)]
pub enum WalEntry {
    Points {
        series: SeriesKey,
        points: Vec<(Timestamp, f64)>,
    },
    DeleteSeries(SeriesKey),
}

impl WalEntry {
    /// This entry in the borrowed form [`Wal::append`] takes.
    pub fn borrowed(&self) -> WalEntryRef<'_> {
        match self {
            WalEntry::Points { series, points } => WalEntryRef::Points { series, points },
            WalEntry::DeleteSeries(series) => WalEntryRef::DeleteSeries(series),
        }
    }
}

/// What replay found besides the entries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplayReport {
    pub files: usize,
    pub records: u64,
    pub entries: u64,
    /// Torn tails truncated: (file, offset truncated at, bytes dropped).
    pub truncated: Vec<(PathBuf, u64, u64)>,
    /// Corrupt records skipped (only with `skip_corrupt`): (file, offset, reason).
    pub skipped: Vec<(PathBuf, u64, String)>,
}

/// An open write-ahead log: appends go to the newest file of its directory.
pub struct Wal {
    dir: PathBuf,
    state: Mutex<State>,
    /// Signalled whenever a leader finishes a sync, a rotation or a recovery, successful or
    /// not.
    sync_done: Condvar,
    /// Number of fdatasyncs of record data, to see how well group commit batches.
    syncs: AtomicU64,
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
            }),
            sync_done: Condvar::new(),
            syncs: AtomicU64::new(0),
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
        let record = encode_record(entries)?;
        let mut st = self.recover_locked(self.lock())?;
        st.pending.extend_from_slice(&record);
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
        file.sync_data()?;
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

/// Reads every WAL file in `dir` in id order and calls `apply` for each entry, in order.
/// Truncates a torn tail of the newest file; fails on any other bad record unless
/// `skip_corrupt`, which skips it and goes on. A missing `dir` replays nothing. On error,
/// `apply` may already have been called for the records before the bad one. Each file is read
/// whole into memory, which rotation keeps bounded. Not to be run on a directory a [`Wal`] is
/// writing to.
pub fn replay(
    dir: &Path,
    skip_corrupt: bool,
    apply: &mut dyn FnMut(WalEntry),
) -> Result<ReplayReport> {
    let files = list_files(dir)?;
    let mut report = ReplayReport {
        files: files.len(),
        ..ReplayReport::default()
    };
    let newest = files.last().map(|(id, _)| *id);
    for (id, path) in &files {
        let is_newest = Some(*id) == newest;
        replay_file(path, is_newest, skip_corrupt, apply, &mut report)?;
    }
    Ok(report)
}

fn replay_file(
    path: &Path,
    is_newest: bool,
    skip_corrupt: bool,
    apply: &mut dyn FnMut(WalEntry),
    report: &mut ReplayReport,
) -> Result<()> {
    let data = fs::read(path).map_err(|e| Error::io(path, e))?;
    let len = data.len();
    if len == 0 {
        return Ok(());
    }
    let skip_or_fail = |report: &mut ReplayReport, offset: usize, reason: String| {
        if skip_corrupt {
            report
                .skipped
                .push((path.to_path_buf(), offset as u64, reason));
            Ok(())
        } else {
            Err(Error::corrupt(path, offset as u64, reason))
        }
    };

    if len < FILE_HEADER_LEN {
        if is_newest {
            // A crash while the file was being created.
            truncate_file(path, 0)?;
            report.truncated.push((path.to_path_buf(), 0, len as u64));
            return Ok(());
        }
        let reason = format!("file header cut short ({len} of {FILE_HEADER_LEN} bytes)");
        return skip_or_fail(report, 0, reason);
    }
    if let Err(reason) = check_file_header(&data) {
        return skip_or_fail(report, 0, format!("{reason}; whole file not replayed"));
    }

    let mut pos = FILE_HEADER_LEN;
    while pos < len {
        match read_frame(&data, pos) {
            Ok((payload, next)) => {
                match decode_payload(payload) {
                    Ok(entries) => {
                        report.records += 1;
                        report.entries += entries.len() as u64;
                        for entry in entries {
                            apply(entry);
                        }
                    }
                    // A checksummed record that does not parse is never a torn write.
                    Err(reason) => skip_or_fail(report, pos, format!("bad record: {reason}"))?,
                }
                pos = next;
            }
            Err(reason) => match resync(&data, pos + 1) {
                Some(next) => {
                    let reason = format!(
                        "bad record: {reason}; a valid record follows at offset {next}, so \
                         this is not a torn tail"
                    );
                    skip_or_fail(report, pos, reason)?;
                    pos = next;
                }
                None if is_newest => {
                    truncate_file(path, pos as u64)?;
                    report
                        .truncated
                        .push((path.to_path_buf(), pos as u64, (len - pos) as u64));
                    return Ok(());
                }
                None => {
                    let reason = format!(
                        "bad record: {reason}; the file is not the newest, so this is not a \
                         torn tail"
                    );
                    return skip_or_fail(report, pos, reason);
                }
            },
        }
    }
    Ok(())
}

fn check_file_header(data: &[u8]) -> std::result::Result<(), String> {
    if data[0..4] != FILE_MAGIC {
        return Err(format!(
            "not a wal file (magic {:02x?}, expected {:02x?})",
            &data[0..4],
            FILE_MAGIC
        ));
    }
    let version = le_u16(data, 4);
    if version != FORMAT_VERSION {
        return Err(format!(
            "unsupported wal format version {version} (this build reads {FORMAT_VERSION})"
        ));
    }
    Ok(())
}

fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut header = [0; FILE_HEADER_LEN];
    header[0..4].copy_from_slice(&FILE_MAGIC);
    header[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header
}

/// The payload of the record at `pos` and the offset just past it, if its header and
/// checksum are sound.
fn read_frame(data: &[u8], pos: usize) -> std::result::Result<(&[u8], usize), String> {
    let rest = &data[pos..];
    if rest.len() < RECORD_HEADER_LEN {
        return Err(format!(
            "record header cut short ({} of {RECORD_HEADER_LEN} bytes)",
            rest.len()
        ));
    }
    let marker = le_u32(rest, 0);
    if marker != RECORD_MARKER {
        return Err(format!(
            "no record marker (found {marker:#010x}, expected {RECORD_MARKER:#010x})"
        ));
    }
    let payload_len = le_u32(rest, 4) as usize;
    if payload_len > MAX_RECORD_LEN {
        return Err(format!(
            "record length {payload_len} exceeds the limit of {MAX_RECORD_LEN} bytes"
        ));
    }
    let available = rest.len() - RECORD_HEADER_LEN;
    if payload_len > available {
        return Err(format!(
            "record of {payload_len} bytes runs past the end of the file ({available} left)"
        ));
    }
    let payload = &rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload_len];
    let stored = le_u32(rest, 8);
    let computed = record_crc(&rest[4..8], payload);
    if stored != computed {
        return Err(format!(
            "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    Ok((payload, pos + RECORD_HEADER_LEN + payload_len))
}

/// Offset of the first sound record starting at or after `from`.
fn resync(data: &[u8], from: usize) -> Option<usize> {
    let marker = RECORD_MARKER.to_le_bytes();
    let mut at = from;
    while at + RECORD_HEADER_LEN <= data.len() {
        let candidate = at + data[at..].windows(4).position(|w| w == marker)?;
        if read_frame(data, candidate).is_ok() {
            return Some(candidate);
        }
        at = candidate + 1;
    }
    None
}

fn record_crc(len_field: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len_field);
    hasher.update(payload);
    hasher.finalize()
}

fn encoded_payload_len(entries: &[WalEntryRef<'_>]) -> usize {
    entries
        .iter()
        .map(|entry| match entry {
            WalEntryRef::Points { series, points } => (1 + 2 + series.as_str().len() + 4)
                .saturating_add(points.len().saturating_mul(POINT_LEN)),
            WalEntryRef::DeleteSeries(series) => 1 + 2 + series.as_str().len(),
        })
        .fold(0, usize::saturating_add)
}

/// One whole record (header and payload) for `entries`, in one allocation.
fn encode_record(entries: &[WalEntryRef<'_>]) -> Result<Vec<u8>> {
    let payload_len = encoded_payload_len(entries);
    if payload_len > MAX_RECORD_LEN {
        return Err(Error::invalid(
            "wal batch",
            format!("encodes to {payload_len} bytes, over the {MAX_RECORD_LEN}-byte record limit"),
        ));
    }
    let mut buf = Vec::with_capacity(RECORD_HEADER_LEN + payload_len);
    buf.extend_from_slice(&RECORD_MARKER.to_le_bytes());
    buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]); // the checksum, filled in once the payload is written
    for entry in entries {
        match entry {
            WalEntryRef::Points { series, points } => {
                buf.push(ENTRY_POINTS);
                put_key(&mut buf, series)?;
                // Fits: the whole payload is at most MAX_RECORD_LEN bytes.
                buf.extend_from_slice(&(points.len() as u32).to_le_bytes());
                let start = buf.len();
                buf.resize(start + points.len() * POINT_LEN, 0);
                for (slot, (ts, value)) in buf[start..].chunks_exact_mut(POINT_LEN).zip(*points) {
                    slot[..8].copy_from_slice(&ts.0.to_le_bytes());
                    slot[8..].copy_from_slice(&value.to_bits().to_le_bytes());
                }
            }
            WalEntryRef::DeleteSeries(series) => {
                buf.push(ENTRY_DELETE_SERIES);
                put_key(&mut buf, series)?;
            }
        }
    }
    debug_assert_eq!(buf.len(), RECORD_HEADER_LEN + payload_len);
    let crc = record_crc(&buf[4..8], &buf[RECORD_HEADER_LEN..]);
    buf[8..12].copy_from_slice(&crc.to_le_bytes());
    Ok(buf)
}

fn put_key(buf: &mut Vec<u8>, series: &SeriesKey) -> Result<()> {
    let key = series.as_str().as_bytes();
    let len = u16::try_from(key.len()).map_err(|_| {
        Error::invalid(
            "series",
            format!("{series} is longer than {} bytes", u16::MAX),
        )
    })?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(key);
    Ok(())
}

/// The entries of one record's payload; the error names the payload byte where parsing failed.
fn decode_payload(payload: &[u8]) -> std::result::Result<Vec<WalEntry>, String> {
    let mut entries = Vec::new();
    let mut reader = PayloadReader { payload, pos: 0 };
    while reader.pos < payload.len() {
        let entry_at = reader.pos;
        let entry_type = reader.take(1)?[0];
        let key_len = le_u16(reader.take(2)?, 0) as usize;
        let key_bytes = reader.take(key_len)?;
        let series = std::str::from_utf8(key_bytes)
            .map_err(|_| format!("series key of entry at payload byte {entry_at} is not utf-8"))
            .and_then(|key| {
                SeriesKey::parse(key).map_err(|e| format!("entry at payload byte {entry_at}: {e}"))
            })?;
        match entry_type {
            ENTRY_POINTS => {
                let count = le_u32(reader.take(4)?, 0) as usize;
                let bytes = reader.take(count.saturating_mul(POINT_LEN))?;
                let points = bytes
                    .chunks_exact(POINT_LEN)
                    .map(|p| (Timestamp(le_i64(p, 0)), f64::from_bits(le_u64(p, 8))))
                    .collect();
                entries.push(WalEntry::Points { series, points });
            }
            ENTRY_DELETE_SERIES => entries.push(WalEntry::DeleteSeries(series)),
            other => {
                return Err(format!(
                    "unknown entry type {other} at payload byte {entry_at}"
                ))
            }
        }
    }
    Ok(entries)
}

struct PayloadReader<'a> {
    payload: &'a [u8],
    pos: usize,
}

impl<'a> PayloadReader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let left = self.payload.len() - self.pos;
        if n > left {
            return Err(format!(
                "entry field of {n} bytes at payload byte {} runs past the payload ({left} left)",
                self.pos
            ));
        }
        let bytes = &self.payload[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }
}

// Little-endian reads at offsets the caller has bounds-checked.
fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut bytes = [0; 4];
    bytes.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(bytes)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(bytes)
}

fn le_i64(b: &[u8], at: usize) -> i64 {
    le_u64(b, at) as i64
}

/// Path of the WAL file with `id` in `dir`.
pub fn file_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("wal-{id:016}.log"))
}

/// The id in a WAL file name, or `None` for any other file.
fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The WAL files in `dir`, by increasing id; none if `dir` does not exist.
pub fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        if let Some(id) = name.to_str().and_then(parse_file_name) {
            files.push((id, entry.path()));
        }
    }
    files.sort_unstable_by_key(|(id, _)| *id);
    Ok(files)
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

fn truncate_file(path: &Path, len: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Makes file creations and deletions in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Windows cannot open a directory as a file; NTFS journals the metadata itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::AtomicBool;
    use std::sync::Barrier;
    use std::thread;
    use std::time::{Duration, Instant};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "minitrue-wal-{name}-{}-{unique}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&path);
            TempDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn key(joined: &str) -> SeriesKey {
        SeriesKey::parse(joined).unwrap()
    }

    fn points(joined: &str, pts: &[(i64, f64)]) -> WalEntry {
        WalEntry::Points {
            series: key(joined),
            points: pts.iter().map(|&(t, v)| (Timestamp(t), v)).collect(),
        }
    }

    fn delete(joined: &str) -> WalEntry {
        WalEntry::DeleteSeries(key(joined))
    }

    fn append_durable(wal: &Wal, batch: &[WalEntry]) -> u64 {
        let refs: Vec<WalEntryRef<'_>> = batch.iter().map(WalEntry::borrowed).collect();
        let seq = wal.append(&refs).unwrap();
        wal.wait_durable(seq).unwrap();
        seq
    }

    fn replay_all(dir: &Path, skip_corrupt: bool) -> Result<(Vec<WalEntry>, ReplayReport)> {
        let mut entries = Vec::new();
        let report = replay(dir, skip_corrupt, &mut |e| entries.push(e))?;
        Ok((entries, report))
    }

    /// Small batches of every entry kind, for recovery tests.
    fn sample_batches() -> Vec<Vec<WalEntry>> {
        vec![
            vec![points("dev1|temp", &[(1_000, 21.5), (2_000, 21.75)])],
            vec![delete("dev2|hum")],
            vec![
                points("dev1|temp", &[(3_000, -0.0)]),
                points("dev3|pressure", &[(-5, f64::MAX), (i64::MAX, f64::NAN)]),
            ],
            vec![points("dev4|volts", &[]), delete("dev1|temp")],
            vec![points("dev5|amps", &[(7, 1e-300)])],
        ]
    }

    /// Writes `batches` durably to a new log in `dir`, one record each, and returns the file
    /// they went to and the offsets where each record starts, plus the end of the last.
    fn write_records(dir: &Path, batches: &[Vec<WalEntry>]) -> (PathBuf, Vec<u64>) {
        let wal = Wal::open(dir).unwrap();
        let path = file_path(dir, wal.current_file_id());
        let mut offsets = vec![FILE_HEADER_LEN as u64];
        for batch in batches {
            append_durable(&wal, batch);
            offsets.push(fs::metadata(&path).unwrap().len());
        }
        (path, offsets)
    }

    /// Compares entries bit for bit, so NaN and -0.0 count as round-tripped.
    fn assert_same_entries(actual: &[WalEntry], expected: &[WalEntry]) {
        fn bits(entries: &[WalEntry]) -> Vec<String> {
            entries
                .iter()
                .map(|e| match e {
                    WalEntry::Points { series, points } => {
                        let bits: Vec<(i64, u64)> =
                            points.iter().map(|(t, v)| (t.0, v.to_bits())).collect();
                        format!("points {series} {bits:?}")
                    }
                    WalEntry::DeleteSeries(series) => format!("delete {series}"),
                })
                .collect()
        }
        assert_eq!(bits(actual), bits(expected));
    }

    fn flip_bit(path: &Path, offset: u64, bit: u32) {
        let mut data = fs::read(path).unwrap();
        data[offset as usize] ^= 1 << bit;
        fs::write(path, data).unwrap();
    }

    #[test]
    fn record_encoding_matches_golden_bytes() {
        let series = key("d|m");
        let record = encode_record(&[
            WalEntryRef::Points {
                series: &series,
                points: &[(Timestamp(1), 1.5)],
            },
            WalEntryRef::DeleteSeries(&series),
        ])
        .unwrap();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0xb5, 0x9c, 0x1a, 0xe7, // marker
            0x20, 0x00, 0x00, 0x00, // payload length 32
            0x0e, 0xf5, 0xc5, 0x89, // crc32 of the length field and payload
            0x01, 0x03, 0x00, b'd', b'|', b'm', // points, key
            0x01, 0x00, 0x00, 0x00, // one point
            0x01, 0, 0, 0, 0, 0, 0, 0, // timestamp 1
            0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // 1.5
            0x02, 0x03, 0x00, b'd', b'|', b'm', // delete series, key
        ];
        assert_eq!(record, expected);
        assert_eq!(file_header(), *b"MTWL\x01\x00\x00\x00");
    }

    #[test]
    fn round_trip_mixed_entries_across_rotate_and_reopen() {
        let dir = TempDir::new("round-trip");
        let batches = sample_batches();
        let wal = Wal::open(dir.path()).unwrap();
        assert_eq!(wal.current_file_id(), 1);
        append_durable(&wal, &batches[0]);
        append_durable(&wal, &batches[1]);
        assert_eq!(wal.rotate().unwrap(), 2);
        append_durable(&wal, &batches[2]);
        drop(wal);
        let wal = Wal::open(dir.path()).unwrap();
        assert_eq!(wal.current_file_id(), 3, "open starts a new file");
        append_durable(&wal, &batches[3]);
        append_durable(&wal, &batches[4]);
        drop(wal);

        let (entries, report) = replay_all(dir.path(), false).unwrap();
        assert_same_entries(&entries, &batches.concat());
        assert_eq!(report.files, 3);
        assert_eq!(report.records, 5);
        assert_eq!(report.entries, 7);
        assert!(report.truncated.is_empty() && report.skipped.is_empty());
    }

    #[test]
    fn concurrent_writers_share_fsyncs_and_replay_every_entry_once() {
        const WRITERS: usize = 8;
        const APPENDS: usize = 200;
        let dir = TempDir::new("concurrent");
        let wal = Wal::open(dir.path()).unwrap();
        // Every writer appends its first record before anyone waits, so at least the first
        // sync covers several records whatever the disk's speed.
        let start = Barrier::new(WRITERS);
        thread::scope(|s| {
            for w in 0..WRITERS {
                let (wal, start) = (&wal, &start);
                s.spawn(move || {
                    let series = key(&format!("writer{w}|n"));
                    for i in 0..APPENDS {
                        let pts = [(Timestamp(i as i64), w as f64)];
                        let entry = WalEntryRef::Points {
                            series: &series,
                            points: &pts,
                        };
                        let seq = wal.append(&[entry]).unwrap();
                        if i == 0 {
                            start.wait();
                        }
                        wal.wait_durable(seq).unwrap();
                    }
                });
            }
        });
        let records = (WRITERS * APPENDS) as u64;
        let syncs = wal.sync_count();
        println!("{records} records, {syncs} fsyncs");
        assert!(syncs < records, "{syncs} syncs for {records} records");
        drop(wal);

        let (entries, report) = replay_all(dir.path(), false).unwrap();
        assert_eq!(report.records, records);
        let mut seen = BTreeSet::new();
        let mut last_per_writer = [-1i64; WRITERS];
        for entry in entries {
            let WalEntry::Points { series, points } = entry else {
                panic!("unexpected {entry:?}");
            };
            let w: usize = series.device_id()["writer".len()..].parse().unwrap();
            let (ts, value) = points[0];
            assert_eq!(value, w as f64);
            assert!(ts.0 > last_per_writer[w], "writer {w} out of order");
            last_per_writer[w] = ts.0;
            assert!(seen.insert((w, ts.0)), "duplicate {w} {ts:?}");
        }
        assert_eq!(seen.len(), WRITERS * APPENDS);
    }

    #[test]
    fn truncation_at_every_offset_keeps_exactly_the_valid_prefix() {
        let dir = TempDir::new("truncate");
        let batches = sample_batches();
        let first_batch = vec![points("older|file", &[(1, 1.0)])];
        let extra = vec![points("after|restart", &[(9, 9.0)])];

        // File 1 holds one complete record; file 2 holds the records that get cut.
        let (first_path, _) = write_records(dir.path(), std::slice::from_ref(&first_batch));
        let (last_path, offsets) = write_records(dir.path(), &batches);
        let first_file = fs::read(&first_path).unwrap();
        let last_file = fs::read(&last_path).unwrap();

        for cut in 0..=last_file.len() as u64 {
            let _ = fs::remove_dir_all(dir.path());
            fs::create_dir_all(dir.path()).unwrap();
            fs::write(&first_path, &first_file).unwrap();
            fs::write(&last_path, &last_file[..cut as usize]).unwrap();

            let (entries, report) =
                replay_all(dir.path(), false).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            let whole = offsets.iter().filter(|&&end| end <= cut).count();
            let kept = whole.saturating_sub(1);
            let valid_len = if whole == 0 { 0 } else { offsets[kept] };
            let mut expected = first_batch.clone();
            expected.extend(batches[..kept].concat());
            assert_same_entries(&entries, &expected);
            let expected_truncation = if cut == valid_len {
                vec![]
            } else {
                vec![(last_path.clone(), valid_len, cut - valid_len)]
            };
            assert_eq!(report.truncated, expected_truncation, "cut at {cut}");
            assert!(report.skipped.is_empty());
            assert_eq!(fs::metadata(&last_path).unwrap().len(), valid_len);

            let wal = Wal::open(dir.path()).unwrap();
            append_durable(&wal, &extra);
            drop(wal);
            let (entries, report) =
                replay_all(dir.path(), false).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            expected.extend(extra.iter().cloned());
            assert_same_entries(&entries, &expected);
            assert!(report.truncated.is_empty() && report.skipped.is_empty());
        }
    }

    #[test]
    fn flipped_bit_in_middle_record_is_corrupt_at_its_file_and_offset() {
        let dir = TempDir::new("flip");
        let (path, offsets) = write_records(dir.path(), &sample_batches());
        let pristine = fs::read(&path).unwrap();
        // Every byte of the third record: marker, length, checksum and payload.
        for at in offsets[2]..offsets[3] {
            fs::write(&path, &pristine).unwrap();
            flip_bit(&path, at, (at % 8) as u32);
            match replay_all(dir.path(), false) {
                Err(Error::Corrupt {
                    path: bad, offset, ..
                }) => {
                    assert_eq!(bad, path, "flip at {at}");
                    assert_eq!(offset, offsets[2], "flip at {at}");
                }
                other => panic!("flip at {at}: expected corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn skip_corrupt_skips_the_flipped_record_and_applies_later_ones() {
        let dir = TempDir::new("skip");
        let batches = sample_batches();
        let (path, offsets) = write_records(dir.path(), &batches);
        flip_bit(&path, offsets[2] + RECORD_HEADER_LEN as u64 + 1, 3);

        let (entries, report) = replay_all(dir.path(), true).unwrap();
        let expected = [&batches[..2], &batches[3..]].concat().concat();
        assert_same_entries(&entries, &expected);
        assert_eq!(report.records, 4);
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].0, path);
        assert_eq!(report.skipped[0].1, offsets[2]);
        assert!(report.skipped[0].2.contains("checksum"), "{report:?}");
        assert!(report.truncated.is_empty());
    }

    #[test]
    fn bad_record_at_end_of_older_file_is_corrupt_not_torn() {
        let dir = TempDir::new("older-tail");
        let (path, offsets) = write_records(dir.path(), &sample_batches());
        let wal = Wal::open(dir.path()).unwrap();
        drop(wal);
        let end = *offsets.last().unwrap();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(end - 3).unwrap();

        match replay_all(dir.path(), false) {
            Err(Error::Corrupt {
                path: bad, offset, ..
            }) => {
                assert_eq!((bad, offset), (path.clone(), offsets[offsets.len() - 2]));
            }
            other => panic!("expected corrupt, got {other:?}"),
        }
        let (_, report) = replay_all(dir.path(), true).unwrap();
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(fs::metadata(&path).unwrap().len(), end - 3, "not truncated");
    }

    #[test]
    fn bad_file_header_is_corrupt() {
        let dir = TempDir::new("header");
        let batches = sample_batches();
        let (path, _) = write_records(dir.path(), &batches[..1]);
        write_records(dir.path(), &batches[1..2]);
        flip_bit(&path, 0, 0);

        match replay_all(dir.path(), false) {
            Err(Error::Corrupt {
                path: bad, offset, ..
            }) => assert_eq!((bad, offset), (path.clone(), 0)),
            other => panic!("expected corrupt, got {other:?}"),
        }
        let (entries, report) = replay_all(dir.path(), true).unwrap();
        assert_same_entries(&entries, &batches[1]);
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].0, path);
    }

    #[test]
    fn payload_that_fails_to_parse_is_corrupt_despite_valid_checksum() {
        let dir = TempDir::new("bad-payload");
        let (path, offsets) = write_records(dir.path(), &sample_batches()[..1]);
        // Rewrite the key's '|' to '#' (no longer a valid series key) and fix the checksum.
        let mut data = fs::read(&path).unwrap();
        let record = offsets[0] as usize;
        let payload = record + RECORD_HEADER_LEN;
        let key_at = payload + 3;
        let pipe = data[key_at..].iter().position(|&b| b == b'|').unwrap();
        data[key_at + pipe] = b'#';
        let crc = record_crc(&data[record + 4..record + 8], &data[payload..]);
        data[record + 8..record + 12].copy_from_slice(&crc.to_le_bytes());
        fs::write(&path, &data).unwrap();

        match replay_all(dir.path(), false) {
            Err(Error::Corrupt {
                path: bad, offset, ..
            }) => assert_eq!((bad, offset), (path.clone(), offsets[0])),
            other => panic!("expected corrupt, got {other:?}"),
        }
        let (entries, report) = replay_all(dir.path(), true).unwrap();
        assert!(entries.is_empty());
        assert_eq!(report.skipped.len(), 1);
        assert!(
            report.truncated.is_empty(),
            "a checksummed record is not torn"
        );
    }

    #[test]
    fn missing_or_empty_files_replay_nothing() {
        let dir = TempDir::new("missing");
        let report = replay_all(dir.path(), false).unwrap().1;
        assert_eq!(report, ReplayReport::default());

        fs::create_dir_all(dir.path()).unwrap();
        fs::write(file_path(dir.path(), 1), b"").unwrap();
        fs::write(file_path(dir.path(), 2), file_header()).unwrap();
        fs::write(dir.path().join("notes.txt"), b"not a wal file").unwrap();
        let (entries, report) = replay_all(dir.path(), false).unwrap();
        assert!(entries.is_empty());
        assert_eq!(report.files, 2);
        assert!(report.truncated.is_empty() && report.skipped.is_empty());
    }

    #[test]
    fn remove_files_before_deletes_exactly_the_older_files() {
        let dir = TempDir::new("remove");
        let wal = Wal::open(dir.path()).unwrap();
        for i in 0..3 {
            append_durable(&wal, &[points("dev|n", &[(i, 0.0)])]);
            wal.rotate().unwrap();
        }
        append_durable(&wal, &[points("dev|n", &[(3, 0.0)])]);
        assert_eq!(wal.current_file_id(), 4);
        let before = wal.size_bytes();
        let removed_bytes: u64 = (1..3)
            .map(|id| fs::metadata(file_path(dir.path(), id)).unwrap().len())
            .sum();

        wal.remove_files_before(3).unwrap();
        let ids: Vec<u64> = list_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, [3, 4]);
        assert_eq!(wal.size_bytes(), before - removed_bytes);
        assert!(
            wal.remove_files_before(5).is_err(),
            "would delete the current file"
        );
        drop(wal);

        let (entries, _) = replay_all(dir.path(), false).unwrap();
        let timestamps: Vec<i64> = entries
            .iter()
            .map(|e| match e {
                WalEntry::Points { points, .. } => points[0].0 .0,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(timestamps, [2, 3]);
    }

    #[test]
    fn size_bytes_counts_files_on_disk_and_pending_records() {
        let dir = TempDir::new("size");
        let wal = Wal::open(dir.path()).unwrap();
        assert_eq!(wal.size_bytes(), FILE_HEADER_LEN as u64);
        let batch = [points("dev|n", &[(1, 1.0), (2, 2.0)])];
        let refs: Vec<_> = batch.iter().map(WalEntry::borrowed).collect();
        let seq = wal.append(&refs).unwrap();
        let record_len = encode_record(&refs).unwrap().len() as u64;
        assert_eq!(wal.size_bytes(), FILE_HEADER_LEN as u64 + record_len);
        wal.wait_durable(seq).unwrap();
        let on_disk = fs::metadata(file_path(dir.path(), 1)).unwrap().len();
        assert_eq!(wal.size_bytes(), on_disk);
    }

    fn append_one(wal: &Wal, ts: i64) -> Result<u64> {
        let pts = [(Timestamp(ts), 0.0)];
        let series = key("dev|n");
        wal.append(&[WalEntryRef::Points {
            series: &series,
            points: &pts,
        }])
    }

    fn replayed_timestamps(dir: &Path) -> Vec<i64> {
        let (entries, report) = replay_all(dir, false).unwrap();
        assert!(report.skipped.is_empty(), "{report:?}");
        entries
            .iter()
            .map(|e| match e {
                WalEntry::Points { points, .. } => points[0].0 .0,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    const ENOSPC: i32 = 28;
    const EIO: i32 = 5;

    #[test]
    fn failed_write_fails_every_waiter_and_the_log_recovers_once_the_disk_takes_writes() {
        for fault in [
            Fault {
                errno: ENOSPC,
                partial: true,
            },
            Fault {
                errno: EIO,
                partial: false,
            },
        ] {
            let dir = TempDir::new("fail-recover");
            let wal = Wal::open(dir.path()).unwrap();
            let durable = append_durable(&wal, &[points("dev|n", &[(1, 1.0)])]);
            let seqs: Vec<u64> = (10..14).map(|i| append_one(&wal, i).unwrap()).collect();
            wal.inject_fault(Some(fault));

            let wal_ref = &wal;
            thread::scope(|s| {
                let waiters: Vec<_> = seqs
                    .iter()
                    .map(|&seq| s.spawn(move || wal_ref.wait_durable(seq)))
                    .collect();
                for waiter in waiters {
                    match waiter.join().unwrap().unwrap_err() {
                        Error::Io { source, .. } => assert_eq!(
                            source.kind(),
                            io::Error::from_raw_os_error(fault.errno).kind()
                        ),
                        other => panic!("expected an I/O error, got {other}"),
                    }
                }
            });
            wal.wait_durable(durable).unwrap();
            assert!(wal.failure().is_some());
            // The disk is still full: appends and rotation fail at once, with the cause.
            assert!(append_one(&wal, 20).is_err());
            assert!(wal.rotate().is_err());
            assert!(wal.recover().is_err());

            wal.inject_fault(None);
            let seq = append_one(&wal, 30).unwrap();
            wal.wait_durable(seq).unwrap();
            assert_eq!(wal.failure(), None);
            // A waiter that looks only now still learns its record was lost.
            assert!(wal.wait_durable(seqs[0]).is_err());
            append_durable(&wal, &[points("dev|n", &[(31, 1.0)])]);
            drop(wal);

            // Nothing of the failed batch replays (the half-written record was cut off),
            // and nothing looks corrupt.
            assert_eq!(replayed_timestamps(dir.path()), [1, 30, 31], "{fault:?}");
        }
    }

    #[test]
    fn recover_on_a_healthy_log_does_nothing() {
        let dir = TempDir::new("recover-healthy");
        let wal = Wal::open(dir.path()).unwrap();
        append_durable(&wal, &[points("dev|n", &[(1, 1.0)])]);
        wal.recover().unwrap();
        assert_eq!(wal.current_file_id(), 1);
        append_durable(&wal, &[points("dev|n", &[(2, 1.0)])]);
        drop(wal);
        assert_eq!(replayed_timestamps(dir.path()), [1, 2]);
    }

    #[test]
    fn failed_rotation_flush_recovers_into_a_new_file() {
        let dir = TempDir::new("rotate-fail");
        let wal = Wal::open(dir.path()).unwrap();
        append_durable(&wal, &[points("dev|n", &[(1, 1.0)])]);
        let lost = append_one(&wal, 2).unwrap();
        wal.inject_fault(Some(Fault {
            errno: ENOSPC,
            partial: true,
        }));
        assert!(wal.rotate().is_err());
        assert!(wal.wait_durable(lost).is_err());
        wal.inject_fault(None);
        let next = wal.rotate().unwrap();
        assert!(next > 2, "a new file after the recovery's new file");
        append_durable(&wal, &[points("dev|n", &[(3, 1.0)])]);
        drop(wal);
        assert_eq!(replayed_timestamps(dir.path()), [1, 3]);
    }

    #[test]
    fn appends_racing_with_rotate_land_wholly_in_one_file() {
        let dir = TempDir::new("rotate-race");
        let wal = Wal::open(dir.path()).unwrap();
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            for w in 0..2 {
                let (wal, stop) = (&wal, &stop);
                s.spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        append_durable(wal, &[points(&format!("w{w}|n"), &[(i, 0.0)])]);
                        i += 1;
                    }
                });
            }
            for _ in 0..20 {
                wal.rotate().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
        drop(wal);
        // Every file except the newest is complete: nothing is torn or skipped anywhere.
        let (_, report) = replay_all(dir.path(), false).unwrap();
        assert_eq!(report.files, 21);
        assert!(report.truncated.is_empty() && report.skipped.is_empty());
    }

    /// Set in the environment of the child process that `crash_writer_child` runs as.
    const CRASH_CHILD_DIR_ENV: &str = "MINITRUE_WAL_CRASH_CHILD_DIR";
    const CRASH_WRITERS: u64 = 4;
    const CRASH_POINTS_PER_BATCH: i64 = 50;
    /// Stops a child whose parent never killed it.
    const CRASH_CHILD_MAX_BATCHES: i64 = 20_000;
    const CRASH_ACKS_BEFORE_KILL: usize = 400;

    /// The points of batch `i` of crash writer `w`, so the parent can check them exactly.
    fn crash_batch(w: u64, i: i64) -> Vec<(Timestamp, f64)> {
        (0..CRASH_POINTS_PER_BATCH)
            .map(|j| {
                let ts = i * CRASH_POINTS_PER_BATCH + j;
                (Timestamp(ts), (ts as f64) + w as f64 / 10.0)
            })
            .collect()
    }

    /// Not a test on its own: the process `acknowledged_batches_survive_sigkill` starts runs
    /// this as a writer that prints `ack {writer} {batch}` once each batch is durable.
    #[test]
    fn crash_writer_child() {
        let Some(dir) = std::env::var_os(CRASH_CHILD_DIR_ENV) else {
            return;
        };
        let wal = Wal::open(Path::new(&dir)).unwrap();
        thread::scope(|s| {
            for w in 0..CRASH_WRITERS {
                let wal = &wal;
                s.spawn(move || {
                    let series = key(&format!("crash{w}|value"));
                    for i in 0..CRASH_CHILD_MAX_BATCHES {
                        let pts = crash_batch(w, i);
                        let entry = WalEntryRef::Points {
                            series: &series,
                            points: &pts,
                        };
                        let seq = wal.append(&[entry]).unwrap();
                        wal.wait_durable(seq).unwrap();
                        println!("ack {w} {i}");
                        if w == 0 && i % 16 == 15 {
                            wal.rotate().unwrap();
                        }
                    }
                });
            }
        });
    }

    /// Kills the child by its id when the test ends, also on failure.
    struct KillOnDrop(Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn acknowledged_batches_survive_sigkill() {
        let dir = TempDir::new("crash");
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "storage::wal::tests::crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let stdout = child.0.stdout.take().unwrap();

        let mut acked = BTreeSet::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let Some(ack) = line.strip_prefix("ack ") else {
                continue;
            };
            let (w, i) = ack.split_once(' ').unwrap();
            acked.insert((w.parse::<u64>().unwrap(), i.parse::<i64>().unwrap()));
            if acked.len() == CRASH_ACKS_BEFORE_KILL {
                break;
            }
        }
        assert_eq!(acked.len(), CRASH_ACKS_BEFORE_KILL, "child ended early");
        child.0.kill().unwrap(); // SIGKILL on unix
        child.0.wait().unwrap();

        let (entries, report) = replay_all(dir.path(), false).unwrap();
        let mut replayed = BTreeSet::new();
        for entry in entries {
            let WalEntry::Points { series, points } = entry else {
                panic!("unexpected {entry:?}");
            };
            let w: u64 = series.device_id()["crash".len()..].parse().unwrap();
            let i = points[0].0 .0 / CRASH_POINTS_PER_BATCH;
            assert_eq!(points, crash_batch(w, i), "batch {w} {i}");
            assert!(replayed.insert((w, i)), "batch {w} {i} twice");
        }
        let lost: Vec<_> = acked.difference(&replayed).collect();
        assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
        // A writer appends a batch only after the previous one is durable.
        for w in 0..CRASH_WRITERS {
            let batches: Vec<i64> = replayed
                .iter()
                .filter(|(rw, _)| *rw == w)
                .map(|(_, i)| *i)
                .collect();
            assert!(batches.iter().copied().eq(0..batches.len() as i64));
        }
        println!(
            "{} acked, {} replayed, {} files, truncated {:?}",
            acked.len(),
            replayed.len(),
            report.files,
            report.truncated
        );
    }

    /// Single-thread write throughput: batches of 10 000 points over 100 series, each made
    /// durable before the next. Set MINITRUE_WAL_BENCH_DIR to measure on another disk.
    #[test]
    #[ignore = "benchmark: cargo test --release storage::wal -- --ignored --nocapture"]
    fn append_throughput() {
        const SERIES: usize = 100;
        const POINTS_PER_SERIES: usize = 100;
        const BATCHES: usize = 500;
        let dir = match std::env::var_os("MINITRUE_WAL_BENCH_DIR") {
            Some(base) => {
                TempDir(Path::new(&base).join(format!("wal-bench-{}", std::process::id())))
            }
            None => TempDir::new("bench"),
        };
        let wal = Wal::open(dir.path()).unwrap();
        let keys: Vec<SeriesKey> = (0..SERIES)
            .map(|s| key(&format!("device{s}|metric")))
            .collect();
        let mut values: Vec<Vec<(Timestamp, f64)>> = vec![Vec::new(); SERIES];

        let mut append_time = Duration::ZERO;
        let mut sync_times = Vec::with_capacity(BATCHES);
        let started = Instant::now();
        for b in 0..BATCHES {
            for (s, pts) in values.iter_mut().enumerate() {
                pts.clear();
                pts.extend((0..POINTS_PER_SERIES).map(|p| {
                    let ts = (b * POINTS_PER_SERIES + p) as i64 * 1000;
                    (Timestamp(ts), (s * p) as f64 * 0.25)
                }));
            }
            let entries: Vec<WalEntryRef<'_>> = keys
                .iter()
                .zip(&values)
                .map(|(series, points)| WalEntryRef::Points { series, points })
                .collect();
            let t0 = Instant::now();
            let seq = wal.append(&entries).unwrap();
            let t1 = Instant::now();
            wal.wait_durable(seq).unwrap();
            append_time += t1 - t0;
            sync_times.push(t1.elapsed());
        }
        let elapsed = started.elapsed();
        let total_points = (BATCHES * SERIES * POINTS_PER_SERIES) as f64;
        sync_times.sort();
        let mean_sync = sync_times.iter().sum::<Duration>() / BATCHES as u32;
        println!(
            "{:.0} points/s ({} batches of {} points in {elapsed:?}); append {:?}/batch; \
             write+fdatasync of {} KiB: mean {mean_sync:?}, p50 {:?}, p99 {:?}",
            total_points / elapsed.as_secs_f64(),
            BATCHES,
            SERIES * POINTS_PER_SERIES,
            append_time / BATCHES as u32,
            (wal.size_bytes() / BATCHES as u64) / 1024,
            sync_times[BATCHES / 2],
            sync_times[BATCHES * 99 / 100],
        );

        // The latency of a sync with almost nothing to write.
        let mut small = Vec::with_capacity(200);
        for i in 0..200 {
            let t0 = Instant::now();
            append_durable(&wal, &[points("tiny|sync", &[(i, 0.0)])]);
            small.push(t0.elapsed());
        }
        small.sort();
        println!(
            "one-point append+fdatasync: p50 {:?}, p99 {:?}",
            small[100], small[198]
        );
    }
}
