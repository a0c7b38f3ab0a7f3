//! Nothing is lost on a crash: a child process creating data keys is killed with SIGKILL at
//! random moments, 50 times per store engine; after each kill the store reopens and every key
//! whose id the child had been given reads back bit-identical.
//!
//! The child is this test binary re-executed with `EKM_CRASH_CHILD` set, running the ignored
//! test `crash_child` (the sled crash-harness pattern).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ekm::core::{DataKeyId, KeyOwner, KeyTag};
use ekm::store::StoreKind;

const CHILD_ENV: &str = "EKM_CRASH_CHILD";
const KILLS: usize = 50;

fn kind_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Redb => "redb",
        StoreKind::Sled => "sled",
    }
}

/// The child: creates keys forever, printing each id and its material once `create` returned.
#[test]
#[ignore = "run by the crash tests as a child process"]
fn crash_child() {
    let spec = std::env::var(CHILD_ENV).expect("only run as a child of the crash tests");
    let (kind, dir) = spec.split_once('|').expect("kind|dir");
    let kind = StoreKind::parse(kind).expect("store kind");
    let (engine, _fake, _store) = DataDir::new(std::path::Path::new(dir), kind).open();
    let owners = [KeyOwner::Cluster, KeyOwner::Svm(VS0), KeyOwner::Svm(VS1)];
    let mut out = std::io::stdout().lock();
    // The harness printed "test crash_child ... " without a newline: end that line first.
    println!();
    for i in 0u64.. {
        let owner = owners[(i % 3) as usize];
        let id = engine
            .create_data_key(owner, KeyTag::parse(&format!("vol{i}")).expect("tag"))
            .expect("create");
        let material = engine.read_data_key(&id).expect("read");
        use std::io::Write;
        writeln!(out, "KEY {id} {}", hex::encode(material.expose_secret())).expect("stdout");
        out.flush().expect("flush");
    }
}

/// A small deterministic generator, seeded per run and printed, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn kill_loop(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), kind);
    {
        let (e, _f, _s) = dd.open();
        create(&e, &secret_body(None, "s3cret")).unwrap();
        create(&e, &secret_body(Some("vs0"), "s3cret")).unwrap();
    }
    let seed = std::env::var("EKM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("{}: EKM_CRASH_SEED={seed}", kind_name(kind));
    let mut rng = XorShift(seed);
    let mut known: Vec<(DataKeyId, String)> = Vec::new();
    let spec = format!("{}|{}", kind_name(kind), dir.path().display());
    let mut killed_mid_write = 0;
    for round in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = collect_stderr(&mut child);
        let stdout = child.stdout.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(stdout);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match r.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        // A line without its newline was cut by the kill: the id was printed
                        // but maybe not whole, so it does not count as returned.
                        Ok(_) if buf.last() == Some(&b'\n') => lines
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buf).into_owned()),
                        Ok(_) => break,
                    }
                }
            })
        };
        // Most rounds kill while keys are being written; every fifth kills during start-up.
        if round % 5 != 0 {
            let start = Instant::now();
            while lines.lock().unwrap().is_empty() && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(1));
            }
            killed_mid_write += 1;
        }
        std::thread::sleep(Duration::from_micros(rng.next() % 60_000));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        assert_sigkilled(
            status,
            &stderr.join().unwrap(),
            &format!("{} round {round} (seed {seed})", kind_name(kind)),
        );
        for line in lines.lock().unwrap().iter() {
            let Some(rest) = line.strip_prefix("KEY ") else {
                continue;
            };
            let mut parts = rest.split_whitespace();
            let (Some(id), Some(material)) = (parts.next(), parts.next()) else {
                panic!("malformed child line {line:?}")
            };
            known.push((DataKeyId::parse(id).unwrap(), material.to_owned()));
        }
        let (e, _f, _s) = dd.open();
        for (id, material) in &known {
            let got = e.read_data_key(id).unwrap_or_else(|err| {
                panic!("round {round} (seed {seed}): key {id} lost after SIGKILL: {err}")
            });
            assert_eq!(
                &hex::encode(got.expose_secret()),
                material,
                "round {round} (seed {seed}): key {id} changed"
            );
        }
    }
    eprintln!(
        "{}: {KILLS} kills ({killed_mid_write} mid-write), {} keys verified after every kill",
        kind_name(kind),
        known.len()
    );
    assert!(
        known.len() >= KILLS,
        "the child made too little progress to test anything"
    );
}

#[test]
fn redb_survives_sigkill_at_random_moments() {
    kill_loop(StoreKind::Redb);
}

#[test]
fn sled_survives_sigkill_at_random_moments() {
    kill_loop(StoreKind::Sled);
}
