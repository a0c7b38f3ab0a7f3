//! Jobs ride out transient failures and fail cleanly on the others: a job that meets AKV
//! throttling (honouring its Retry-After), an unreachable vault or a lost store race waits and
//! retries within its budget, saying so in its message; a refusal that waiting cannot fix, or a
//! store I/O error, ends the job at once as a failure with its code, releasing its
//! configuration for the next job (never left `running` until a restart).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::hooked::{Call, Hooked};
use common::{KEY_ID_2, create, secret_body, topology};
use ekm::core::{
    Engine, EngineOptions, ErrorKind, JobState, KeyId, KeyOwner, KeyTag, ProtectionKey, Store,
    StoreError, Write,
};
use ekm::fake::{FakeBackend, Fault, Op};

/// Fails with an I/O error the next `left` commits that rewrite data key records (a commit
/// putting `r/...`, or a rewritten page under `r/`).
fn failing_rewrites(inner: Arc<dyn Store>, left: Arc<AtomicUsize>) -> Hooked {
    Hooked::new("failing-rewrites", inner, move |call| {
        let rewrites = match call {
            Call::Commit(txn) => txn
                .writes
                .iter()
                .any(|w| matches!(w, Write::Put(k, _) if k.starts_with(b"r/"))),
            Call::Rewrite(prefix) => prefix.starts_with(b"r/"),
            _ => false,
        };
        if rewrites
            && left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(StoreError::Io("injected: no space left on device".into()));
        }
        Ok(())
    })
}

struct Lab {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    fake: Arc<FakeBackend>,
    /// How many more rewrites fail.
    fail_rewrites: Arc<AtomicUsize>,
    config: uuid::Uuid,
}

fn lab(budget: Duration) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let inner = ekm::store::open(ekm::store::StoreKind::Redb, &dir.path().join("store")).unwrap();
    let fail_rewrites = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(failing_rewrites(inner, fail_rewrites.clone()));
    let fake = Arc::new(FakeBackend::in_memory());
    let engine = Engine::open(
        EngineOptions::new(store, fake.clone(), topology(), ProtectionKey::generate())
            .rekey_batch(8)
            .job_retry_budget(budget),
    )
    .unwrap();
    let config = create(&engine, &secret_body(None, "s3cret")).unwrap().uuid;
    engine
        .create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); 40])
        .unwrap();
    Lab {
        _dir: dir,
        engine,
        fake,
        fail_rewrites,
        config,
    }
}

/// Waits for the job to end, collecting every message it showed on the way.
fn watch(engine: &Engine, job: uuid::Uuid) -> (ekm::core::Job, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let j = engine.wait_job(job, Duration::from_millis(20)).unwrap();
        if seen.last() != Some(&j.message) {
            seen.push(j.message.clone());
        }
        if j.state.is_terminal() || Instant::now() > deadline {
            return (j, seen);
        }
    }
}

#[test]
fn a_throttled_rekey_external_waits_as_asked_and_succeeds() {
    let l = lab(Duration::from_secs(30));
    l.fake.fail_next(
        Some(Op::Check),
        Fault::Throttled {
            retry_after: Duration::from_secs(2),
        },
        1,
    );
    let start = Instant::now();
    let job = l
        .engine
        .start_rekey_external(l.config, KeyId::parse(KEY_ID_2).unwrap(), None)
        .unwrap();
    let (job, seen) = watch(&l.engine, job.uuid);
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "Retry-After honoured"
    );
    assert!(
        seen.iter()
            .any(|m| m.starts_with("Waiting 2 s before retry 1") && m.contains("throttling")),
        "the wait shows in the job's message: {seen:?}"
    );
    assert_eq!(
        l.engine.get_config(l.config).unwrap().key_id.as_str(),
        KEY_ID_2
    );
}

#[test]
fn an_unreachable_vault_is_retried_with_backoff_until_the_budget_is_spent() {
    let l = lab(Duration::from_secs(3));
    l.fake.set_fault(Some(Fault::Unreachable));
    let start = Instant::now();
    let job = l.engine.start_rekey_internal(l.config).unwrap();
    let (job, seen) = watch(&l.engine, job.uuid);
    // Waits of 1 s and 2 s fit the 3 s budget; the next (4 s) does not.
    assert_eq!(
        (job.state, job.code),
        (JobState::Failure, ErrorKind::AkvUnavailable.code())
    );
    assert!(job.message.contains("unreachable"), "{}", job.message);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert!(
        seen.iter()
            .any(|m| m.starts_with("Waiting 1 s before retry 1")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|m| m.starts_with("Waiting 2 s before retry 2")),
        "{seen:?}"
    );
    // The vault is back: the next job succeeds.
    l.fake.set_fault(None);
    let job = l.engine.start_rekey_internal(l.config).unwrap();
    assert_eq!(watch(&l.engine, job.uuid).0.state, JobState::Success);
}

#[test]
fn a_refusal_that_waiting_cannot_fix_fails_at_once() {
    let l = lab(Duration::from_secs(30));
    l.fake.fail_next(Some(Op::Check), Fault::KeyDisabled, 1);
    let start = Instant::now();
    let job = l
        .engine
        .start_rekey_external(l.config, KeyId::parse(KEY_ID_2).unwrap(), None)
        .unwrap();
    let (job, seen) = watch(&l.engine, job.uuid);
    assert_eq!(job.state, JobState::Failure);
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(!seen.iter().any(|m| m.starts_with("Waiting")), "{seen:?}");
}

#[test]
fn a_store_io_error_fails_the_job_cleanly_and_frees_the_configuration() {
    let l = lab(Duration::from_secs(30));
    let before: Vec<_> = l
        .engine
        .list_data_keys(l.config)
        .unwrap()
        .into_iter()
        .map(|k| (k.key_id, l.engine.read_data_key(&k.key_id).unwrap()))
        .collect();
    l.fail_rewrites.store(1, Ordering::SeqCst);
    let job = l.engine.start_rekey_internal(l.config).unwrap();
    let (job, _) = watch(&l.engine, job.uuid);
    assert_eq!(
        (job.state, job.code),
        (JobState::Failure, ErrorKind::StoreFailed.code()),
        "{}",
        job.message
    );
    assert!(job.message.contains("no space left"), "{}", job.message);
    // Not left running: the configuration takes the next job, which finishes the rekey.
    let job = l.engine.start_rekey_internal(l.config).unwrap();
    let (job, _) = watch(&l.engine, job.uuid);
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    for (id, material) in before {
        assert_eq!(
            l.engine.read_data_key(&id).unwrap().expose_secret(),
            material.expose_secret()
        );
    }
}
