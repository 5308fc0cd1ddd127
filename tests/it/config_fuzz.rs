//! Config fuzzing: 2,000 seeded mutations of config/example.toml (byte flips, invalid UTF-8, line
//! deletions and duplications, value swaps, hostile values, truncation) must never panic or hang,
//! and every rejection must name the file and a real line (for bad UTF-8: the bad byte's line).
//!
//! A plain seeded generator instead of proptest: the cases are the same on every run and machine,
//! a failure prints its seed and text, and no dependency is needed.

use crate::common;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CASES: u64 = 2_000;
/// One load is well under a millisecond; this only turns a hang into a failure.
const PER_CASE: Duration = Duration::from_secs(10);

/// xorshift64*: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values a careless or hostile operator might write after `=`.
const VALUES: &[&str] = &[
    "\"\"",
    "0",
    "-1",
    "20",
    "\"20\"",
    "\"0.0001\"",
    "\"99999999999T\"",
    "99999999999999999999",
    "1e400",
    "0x7fffffffffffffff",
    "\"::1\"",
    "\"2001:db8::1\"",
    "\"local\"",
    "\"store1\"",
    "\"tank/../x\"",
    "\"store1:tank/data/x\"",
    "\"backup/data/inner\"",
    "\"nowhere:tank/x\"",
    "\"a;rm -rf /\"",
    "true",
    "[1, 2]",
    "{ a = 1 }",
    "\"\u{1b}]0;x\u{7}\"",
    "\"2x\"",
    "\"1h30m\"",
    "\"18446744073709551615\"",
    "[",
    "\"",
];

/// What one case did to the text, for the failure message.
#[derive(Debug)]
#[allow(dead_code)] // the fields are read through Debug, in failure messages
enum Mutation {
    FlipByte(usize, u8),
    BadUtf8(usize),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapValues(usize, usize),
    SetValue(usize, &'static str),
    Truncate(usize),
}

fn line_ranges(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            v.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < bytes.len() {
        v.push((start, bytes.len()));
    }
    v
}

/// Lines of the form `key = value`, as (line index, offset of the value's start, end before newline).
fn value_lines(bytes: &[u8]) -> Vec<(usize, usize, usize)> {
    line_ranges(bytes)
        .into_iter()
        .enumerate()
        .filter_map(|(i, (s, e))| {
            let line = &bytes[s..e];
            let eq = line.iter().position(|&b| b == b'=')?;
            let end = if line.ends_with(b"\n") { e - 1 } else { e };
            Some((i, s + eq + 1, end))
        })
        .collect()
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) -> Mutation {
    let lines = line_ranges(bytes);
    match rng.below(7) {
        0 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            let b = rng.next() as u8;
            bytes[at] = b;
            Mutation::FlipByte(at, b)
        }
        1 => {
            let at = rng.below(bytes.len() + 1);
            let bad: &[u8] = [
                &b"\xff"[..],
                b"\xc3",
                b"\xe2\x82",
                b"\xed\xa0\x80",
                b"\xf8\x88\x80\x80\x80",
            ][rng.below(5)];
            bytes.splice(at..at, bad.iter().copied());
            Mutation::BadUtf8(at)
        }
        2 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            bytes.drain(lines[i].0..lines[i].1);
            Mutation::DeleteLine(i + 1)
        }
        3 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            let line = bytes[lines[i].0..lines[i].1].to_vec();
            bytes.splice(lines[i].1..lines[i].1, line);
            Mutation::DuplicateLine(i + 1)
        }
        4 | 5 => {
            let vals = value_lines(bytes);
            if vals.len() < 2 {
                return Mutation::Truncate(bytes.len());
            }
            let a = vals[rng.below(vals.len())];
            if rng.below(2) == 0 {
                let b = vals[rng.below(vals.len())];
                let (first, second) = if a.1 <= b.1 { (a, b) } else { (b, a) };
                if first.0 == second.0 {
                    return Mutation::SwapValues(first.0 + 1, first.0 + 1);
                }
                let va = bytes[first.1..first.2].to_vec();
                let vb = bytes[second.1..second.2].to_vec();
                // replace the later one first so the earlier offsets stay valid
                bytes.splice(second.1..second.2, va);
                bytes.splice(first.1..first.2, vb);
                Mutation::SwapValues(first.0 + 1, second.0 + 1)
            } else {
                let v = VALUES[rng.below(VALUES.len())];
                bytes.splice(a.1..a.2, format!(" {v}").into_bytes());
                Mutation::SetValue(a.0 + 1, v)
            }
        }
        _ => {
            let at = rng.below(bytes.len() + 1);
            bytes.truncate(at);
            Mutation::Truncate(at)
        }
    }
}

/// The 1-based line of the first byte that is not UTF-8, if any.
fn bad_utf8_line(bytes: &[u8]) -> Option<usize> {
    let e = std::str::from_utf8(bytes).err()?;
    Some(1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count())
}

/// What one case showed, checked on the main thread.
struct Outcome {
    case: u64,
    mutations: Vec<Mutation>,
    bytes: Vec<u8>,
    result: Result<Result<(), ferry::config::ConfigErrors>, String>,
}

fn example() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml")).unwrap()
}

#[test]
fn mutated_example_configs_never_panic_or_hang_and_every_rejection_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("ferry.toml");
    let base = example();
    assert!(
        ferry::config::load(&{
            std::fs::write(&path, &base).unwrap();
            path.clone()
        })
        .is_ok(),
        "config/example.toml itself must load"
    );

    let (tx, rx) = mpsc::channel::<Outcome>();
    let worker_path = path.clone();
    let worker = std::thread::spawn(move || {
        // a panic is caught per case and reported with its text, not as a dead thread
        for case in 0..CASES {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (case + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
            let mut bytes = base.clone();
            let mutations: Vec<Mutation> = (0..1 + rng.below(3)).map(|_| mutate(&mut rng, &mut bytes)).collect();
            std::fs::write(&worker_path, &bytes).unwrap();
            let result = std::panic::catch_unwind(|| ferry::config::load(&worker_path).map(|_| ())).map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            });
            if tx
                .send(Outcome {
                    case,
                    mutations,
                    bytes,
                    result,
                })
                .is_err()
            {
                return;
            }
        }
    });

    let started = Instant::now();
    let (mut rejected, mut accepted, mut utf8) = (0, 0, 0);
    let mut cli_checked = 0;
    for case in 0..CASES {
        let o = match rx.recv_timeout(PER_CASE) {
            Ok(o) => o,
            Err(_) => panic!(
                "case {case}: no answer within {PER_CASE:?} (a hang); the file is {}",
                path.display()
            ),
        };
        assert_eq!(o.case, case);
        let show = || {
            format!(
                "case {} {:?}\n---\n{}\n---",
                o.case,
                o.mutations,
                String::from_utf8_lossy(&o.bytes)
            )
        };
        let errors = match &o.result {
            Err(panic) => panic!("load panicked ({panic}) on {}", show()),
            Ok(Ok(())) => {
                accepted += 1;
                assert_eq!(bad_utf8_line(&o.bytes), None, "accepted invalid UTF-8: {}", show());
                continue;
            }
            Ok(Err(e)) => e,
        };
        rejected += 1;
        let lines = o.bytes.iter().filter(|&&b| b == b'\n').count() + 1;
        assert!(!errors.errors.is_empty(), "empty error list: {}", show());
        for e in &errors.errors {
            assert_eq!(e.file, path, "{e}: {}", show());
            assert!(
                (1..=lines).contains(&e.line),
                "error without a real line ({} of {lines}): {e}\n{}",
                e.line,
                show()
            );
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("{}:{}: ", path.display(), e.line)),
                "{shown}: {}",
                show()
            );
            assert!(!e.message.is_empty(), "{shown}: {}", show());
        }
        if let Some(line) = bad_utf8_line(&o.bytes) {
            utf8 += 1;
            assert!(
                errors
                    .errors
                    .iter()
                    .any(|e| e.line == line && e.message.contains("UTF-8")),
                "invalid UTF-8 at line {line} not named: {errors}\n{}",
                show()
            );
        }
        // now and then, the command line must say the same, all of it, and fail
        if case % 200 == 0 {
            // its own file: the worker is already writing the next case to `path`
            let cli_path = dir.path().join("cli.toml");
            std::fs::write(&cli_path, &o.bytes).unwrap();
            let out = common::runner::bare()
                .arg("-c")
                .arg(&cli_path)
                .arg("check")
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{}", show());
            let err = String::from_utf8_lossy(&out.stderr)
                .replace(&cli_path.display().to_string(), &path.display().to_string());
            for e in &errors.errors {
                assert!(err.contains(&e.to_string()), "`check` left out {e}:\n{err}\n{}", show());
            }
            cli_checked += 1;
        }
    }
    worker.join().unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "{CASES} cases in {elapsed:.1?}: {rejected} rejected ({utf8} for invalid UTF-8), {accepted} accepted, {cli_checked} also through `ferry check`"
    );
    // the mutations must really exercise both sides, or this test proves nothing
    assert!(rejected > CASES as usize / 3, "only {rejected} rejected");
    assert!(accepted > 20, "only {accepted} accepted");
    assert!(utf8 > 50, "only {utf8} with invalid UTF-8");
}
