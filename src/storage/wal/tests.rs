//! Unit tests of the write-ahead log: format, group commit, failures and recovery, replay.

use super::*;
use crate::storage::{Point, SeriesKey, Timestamp};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use crate::test_dir::TempDir;

fn key(joined: &str) -> SeriesKey {
    SeriesKey::decode(joined.as_bytes()).unwrap()
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
    let mut record = Vec::new();
    let mut ids = SeriesIds::default();
    encode_record(
        &mut record,
        &[
            WalEntryRef::Points {
                series: &series,
                points: &[(Timestamp(1), 1.5)],
            },
            WalEntryRef::Points {
                series: &series,
                points: &[(Timestamp(2), -1.0)],
            },
            WalEntryRef::DeleteSeries(&series),
        ],
        &mut ids,
    )
    .unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0xb5, 0x9c, 0x1a, 0xe7, // marker
        0x5d, 0x00, 0x00, 0x00, // payload length 93
        0xe2, 0xaf, 0x75, 0x29, // crc32 of the length field and payload
        0x03, 0, 0, 0, 0, 0x13, 0x00, // points of a new series: number 0, key length
        // key: version 2, metric "m", one label device_id="d"
        0x00, 0x01, 0x00, b'm', 0x01, 0x09, 0x00,
        b'd', b'e', b'v', b'i', b'c', b'e', b'_', b'i', b'd', 0x01, 0x00, b'd',
        0x01, 0x00, 0x00, 0x00, // one point
        0x01, 0, 0, 0, 0, 0, 0, 0, // timestamp 1
        0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // 1.5
        0x04, 0, 0, 0, 0, // points of series number 0
        0x01, 0x00, 0x00, 0x00, // one point
        0x02, 0, 0, 0, 0, 0, 0, 0, // timestamp 2
        0, 0, 0, 0, 0, 0, 0xf0, 0xbf, // -1.0
        0x02, 0x13, 0x00, // delete series, key length
        0x00, 0x01, 0x00, b'm', 0x01, 0x09, 0x00,
        b'd', b'e', b'v', b'i', b'c', b'e', b'_', b'i', b'd', 0x01, 0x00, b'd',
    ];
    assert_eq!(record, expected);
    assert_eq!(file_header(), *b"MTWL\x03\x00\x00\x00");

    // A second record in the same file names the series by its number only.
    let before = record.len();
    let batch = [(Timestamp(3), 2.0)];
    let entry = WalEntryRef::Points {
        series: &series,
        points: &batch,
    };
    encode_record(&mut record, &[entry], &mut ids).unwrap();
    assert_eq!(
        record.len() - before,
        RECORD_HEADER_LEN + 1 + 4 + 4 + POINT_LEN
    );
    // Decoding needs the first record's numbering.
    let (first, next) = read_frame(&record, 0).unwrap();
    let (second, _) = read_frame(&record, next).unwrap();
    let unknown = decode_payload(second, &mut HashMap::new()).unwrap_err();
    assert!(
        unknown.contains("series number 0 is not defined earlier in this file"),
        "{unknown}"
    );
    let mut numbering = HashMap::new();
    assert_eq!(decode_payload(first, &mut numbering).unwrap().len(), 3);
    assert_eq!(
        decode_payload(second, &mut numbering).unwrap(),
        vec![WalEntry::Points {
            series: series.clone(),
            points: batch.to_vec()
        }]
    );
}

#[test]
fn a_numbering_started_afresh_in_the_same_file_redefines_the_numbers() {
    // What a failed rotation leaves: records numbered afresh after others in one file.
    let (a, b) = (key("a|m"), key("b|m"));
    let pts = [(Timestamp(1), 1.0)];
    let entry = |series| WalEntryRef::Points {
        series,
        points: &pts,
    };
    let mut file = Vec::new();
    let mut ids = SeriesIds::default();
    encode_record(&mut file, &[entry(&a), entry(&a)], &mut ids).unwrap();
    ids.reset();
    encode_record(&mut file, &[entry(&b), entry(&b)], &mut ids).unwrap();
    let mut numbering = HashMap::new();
    let mut series = Vec::new();
    let mut pos = 0;
    while pos < file.len() {
        let (payload, next) = read_frame(&file, pos).unwrap();
        for e in decode_payload(payload, &mut numbering).unwrap() {
            let WalEntry::Points { series: s, .. } = e else {
                panic!("only points were written")
            };
            series.push(s);
        }
        pos = next;
    }
    assert_eq!(series, [a.clone(), a, b.clone(), b]);
}

#[test]
fn version_2_records_still_decode() {
    // A record as version 2 wrote it: every entry with its whole key.
    #[rustfmt::skip]
    let payload: &[u8] = &[
        0x01, 0x13, 0x00, // points, key length
        0x00, 0x01, 0x00, b'm', 0x01, 0x09, 0x00,
        b'd', b'e', b'v', b'i', b'c', b'e', b'_', b'i', b'd', 0x01, 0x00, b'd',
        0x01, 0x00, 0x00, 0x00, // one point
        0x01, 0, 0, 0, 0, 0, 0, 0, // timestamp 1
        0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // 1.5
        0x02, 0x13, 0x00, // delete series, key length
        0x00, 0x01, 0x00, b'm', 0x01, 0x09, 0x00,
        b'd', b'e', b'v', b'i', b'c', b'e', b'_', b'i', b'd', 0x01, 0x00, b'd',
    ];
    let series = key("d|m");
    assert_eq!(
        decode_payload(payload, &mut HashMap::new()).unwrap(),
        vec![
            WalEntry::Points {
                series: series.clone(),
                points: vec![(Timestamp(1), 1.5)]
            },
            WalEntry::DeleteSeries(series),
        ]
    );
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
    // Make the key's metric start with a control character (no longer a valid series key)
    // and fix the checksum.
    let mut data = fs::read(&path).unwrap();
    let record = offsets[0] as usize;
    let payload = record + RECORD_HEADER_LEN;
    let key_at = payload + 3;
    // The key's version byte and the metric's length come first.
    data[key_at + 3] = b'\n';
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
    let mut record = Vec::new();
    encode_record(&mut record, &refs, &mut SeriesIds::default()).unwrap();
    let record_len = record.len() as u64;
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
        Some(base) => TempDir::under(Path::new(&base), "wal-bench"),
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

#[test]
fn batches_carry_every_point_grouped_by_series_and_split_when_large() {
    let (a, b) = (key("a|m"), key("b|m"));
    let point = |series: &SeriesKey, ts: i64| Point {
        series: series.clone(),
        timestamp: Timestamp(ts),
        value: ts as f64 / 2.0,
    };
    let points = vec![point(&a, 1), point(&b, 1), point(&a, 2), point(&a, 3)];
    let bodies = encode_batches(&points).unwrap();
    assert_eq!(bodies.len(), 1);
    let entries = decode_batch(&bodies[0]).unwrap();
    let pts = |ts: &[i64]| ts.iter().map(|&t| (Timestamp(t), t as f64 / 2.0)).collect();
    assert_eq!(
        entries,
        vec![
            WalEntry::Points {
                series: a.clone(),
                points: pts(&[1, 2, 3])
            },
            WalEntry::Points {
                series: b.clone(),
                points: pts(&[1])
            },
        ]
    );

    // More than one body holds: several bodies, each decoding on its own, nothing lost.
    let many: Vec<Point> = (0..700_000).map(|ts| point(&a, ts)).collect();
    let bodies = encode_batches(&many).unwrap();
    assert!(bodies.len() > 1, "{} bodies", bodies.len());
    let mut back = Vec::new();
    for body in &bodies {
        assert!(body.len() <= MAX_BATCH_BYTES + RECORD_HEADER_LEN);
        for entry in decode_batch(body).unwrap() {
            let WalEntry::Points { series, points } = entry else {
                panic!("only points")
            };
            assert_eq!(series, a);
            back.extend(points);
        }
    }
    assert_eq!(back.len(), many.len());
    assert!(back.iter().zip(&many).all(|(p, q)| p.0 == q.timestamp));
}

#[test]
fn a_batch_that_is_short_altered_or_followed_by_bytes_is_refused() {
    let body = encode_batches(&[Point {
        series: key("a|m"),
        timestamp: Timestamp(5),
        value: 1.0,
    }])
    .unwrap()
    .remove(0);
    assert!(decode_batch(&body[..5])
        .unwrap_err()
        .contains("shorter than a record header"));
    let mut flipped = body.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(decode_batch(&flipped)
        .unwrap_err()
        .contains("checksum mismatch"));
    let mut longer = body.clone();
    longer.push(0);
    assert!(decode_batch(&longer)
        .unwrap_err()
        .contains("1 bytes after the record"));
    assert_eq!(decode_batch(&body).unwrap().len(), 1);
}
