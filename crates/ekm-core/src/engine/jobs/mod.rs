//! Jobs: persisted records of rekey-external, rekey-internal, restore and migrate, their
//! runners, and resumption after a crash or shutdown.
//!
//! A job holds a marker (`a/<config uuid>`) on every configuration it changes, written with
//! the job in one transaction and removed with its final state in another: one lifecycle job
//! per configuration at a time, and the markers are how `open` finds unfinished jobs.
//!
//! Owns: the `j/` records and the `a/` markers; starting, running, retrying and resuming jobs.
//! Must never: start a job on a configuration another job holds; leave a marker behind a job
//! in a final state.
//!
//! ```text
//! queued ──► running ──► success
//!               │  └───► failure (the error kept in the job)
//!               └── crash or shutdown: resumed at the next open (or taken over by another
//!                   process of a shared store)
//! ```

mod migrate;
mod rekey_external;
mod rekey_internal;
mod restore;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Engine;
use super::helpers::{now_secs, store_failed};
use crate::codec::WrappedKek;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::KeyOwner;
use crate::layout;
use crate::store::{Check, Transaction};
use crate::stored::StoredConfig;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Rewrap the KEK with a new external key.
    RekeyExternal,
    /// New KEK generation; rewrap every data key.
    RekeyInternal,
    /// Load the KEK and keys on nodes that lack them.
    Restore,
    /// Move an SVM's keys from the cluster's key manager to its own.
    Migrate,
    /// Wait until every node has evicted a deleted data key (`key_id`); holds no
    /// configuration marker (`erase.rs`).
    Erase,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Recorded, not started.
    Queued,
    /// Started (or interrupted, until resumed).
    Running,
    /// Done.
    Success,
    /// Stopped with an error (`code`, `message`).
    Failure,
}

impl JobState {
    /// Success or failure.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Success | JobState::Failure)
    }

    /// The ONTAP job state string.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Success => "success",
            JobState::Failure => "failure",
        }
    }
}

/// A job as stored and reported. The message is always present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Job uuid.
    pub uuid: Uuid,
    /// What it does.
    pub kind: JobKind,
    /// The configuration it works on (the source, for migrate).
    pub config: Uuid,
    /// Where it is.
    pub state: JobState,
    /// What it is doing or what happened.
    pub message: String,
    /// 0, or the ONTAP code of the failure.
    pub code: u32,
    /// Units done (keys rewrapped, nodes restored).
    pub processed: u64,
    /// Units to do.
    pub total: u64,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds.
    pub updated: u64,
    /// rekey-external: the new external key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// rekey-internal: the generation being retired (journal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_generation: Option<u32>,
    /// rekey-internal: the new generation (journal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_generation: Option<u32>,
    /// migrate: the destination configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Uuid>,
    /// rekey-internal: hex of the last record rewrapped (journal; the resume point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The node whose process runs the job. In a cluster store, the other nodes take the job
    /// over when that process's liveness record vanishes (it died, or lost the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<Uuid>,
    /// The job record as this runner last wrote it. In a cluster store every write of the job
    /// is conditional on it (a fence): a runner that lost the job to another node fails its
    /// next write instead of advancing the job a second time.
    #[serde(skip)]
    pub(crate) fence: Option<Vec<u8>>,
    /// What the last [`Job::put`] wrote, until its commit is known to have succeeded
    /// ([`Job::committed`]): only then does it become the fence.
    #[serde(skip)]
    pub(crate) pending: Option<Vec<u8>>,
}

impl Job {
    pub(crate) fn new(kind: JobKind, config: Uuid) -> Job {
        let now = now_secs();
        Job {
            uuid: Uuid::new_v4(),
            kind,
            config,
            state: JobState::Queued,
            message: "Queued.".into(),
            code: 0,
            processed: 0,
            total: 0,
            created: now,
            updated: now,
            key_id: None,
            from_generation: None,
            to_generation: None,
            destination: None,
            cursor: None,
            runner: None,
            fence: None,
            pending: None,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The error a failed job ended with: its kind (from the stored code) and its message as
    /// recorded. `None` unless the job failed.
    pub fn error(&self) -> Option<Error> {
        if self.state != JobState::Failure {
            return None;
        }
        let kind = ErrorKind::from_code(self.code).unwrap_or(ErrorKind::StoreFailed);
        Some(Error::new(kind).with_message(self.message.clone()))
    }

    /// Decodes a stored job record.
    pub fn decode(bytes: &[u8]) -> Result<Job> {
        serde_json::from_slice(bytes).map_err(|_| Error::corrupt("A job record is malformed."))
    }

    /// The configurations whose markers this job holds.
    pub(crate) fn markers(&self) -> Vec<Uuid> {
        if self.kind == JobKind::Erase {
            return Vec::new();
        }
        let mut m = vec![self.config];
        m.extend(self.destination);
        m
    }

    /// Puts this job, as it is now, into `txn`.
    pub(crate) fn put(&mut self, txn: &mut Transaction) {
        self.updated = now_secs();
        let bytes = self.encode();
        if let Some(fence) = &self.fence {
            txn.check(Check::Equals(layout::job(self.uuid), fence.clone()));
            self.pending = Some(bytes.clone());
        }
        txn.put(layout::job(self.uuid), bytes);
    }

    /// The transaction of the last [`Job::put`] committed: what it wrote is the new fence.
    pub(crate) fn committed(&mut self) {
        if let Some(p) = self.pending.take() {
            self.fence = Some(p);
        }
    }

    /// Puts the final state and releases the markers, in `txn`.
    pub(crate) fn finish(
        &mut self,
        txn: &mut Transaction,
        result: std::result::Result<String, &Error>,
    ) {
        match result {
            Ok(message) => {
                self.state = JobState::Success;
                self.code = 0;
                self.message = message;
            }
            Err(e) => {
                self.state = JobState::Failure;
                self.code = e.code();
                self.message = e.message();
            }
        }
        for m in self.markers() {
            txn.check(Check::Equals(
                layout::marker(m),
                self.uuid.as_bytes().to_vec(),
            ))
            .delete(layout::marker(m));
        }
        self.put(txn);
    }
}

/// Why a runner stopped before the job's end.
pub(crate) enum Stop {
    /// Shutdown: the job stays `running` and resumes at the next open.
    Interrupted,
    /// The job failed; record it.
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

impl Engine {
    /// Records a new job and its markers. [`ErrorKind::JobInProgress`] when another job holds a
    /// marker. The caller holds the admin lock.
    pub(crate) fn begin_job(&self, mut job: Job) -> Result<Job> {
        let mut txn = Transaction::new();
        for m in job.markers() {
            txn.check(Check::Absent(layout::marker(m)))
                .put(layout::marker(m), job.uuid.as_bytes().to_vec());
        }
        job.put(&mut txn);
        match self.store.commit(txn) {
            Ok(()) => Ok(job),
            Err(crate::store::StoreError::Conflict(_)) => Err(Error::new(ErrorKind::JobInProgress)),
            Err(e) => Err(store_failed(e)),
        }
    }

    /// Runs a job in the background.
    pub(crate) fn spawn_job(self: &Arc<Self>, uuid: Uuid) {
        // Held while the thread is started and recorded, so shutdown (which takes the list)
        // either joins it or it never starts.
        let mut threads = self.threads.lock();
        if self.is_shutting_down() {
            return;
        }
        let engine = self.clone();
        let spawned = std::thread::Builder::new()
            .name("ekm-job".into())
            .spawn(move || engine.run_job(uuid));
        // If no thread can be had the job stays queued and resumes at the next open.
        if let Ok(handle) = spawned {
            threads.retain(|t| !t.is_finished());
            threads.push(handle);
        }
    }

    /// In a cluster store: every 2 s, takes over the jobs whose runner's process is gone (its
    /// liveness record vanished with its lease). Stops at shutdown.
    pub(crate) fn spawn_job_takeover(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("ekm-job-takeover".into())
            .spawn(move || {
                loop {
                    for _ in 0..20 {
                        std::thread::sleep(Duration::from_millis(100));
                        match weak.upgrade() {
                            Some(e) if !e.is_shutting_down() => {}
                            _ => return,
                        }
                    }
                    let Some(engine) = weak.upgrade() else { return };
                    let _ = engine.resume_jobs();
                    // Erase jobs hold no marker: found through their erase records.
                    engine.resume_erase_jobs();
                }
            });
        if let Ok(handle) = spawned {
            self.threads.lock().push(handle);
        }
    }

    /// In a cluster store: checks the backends from this process's nodes at once and then
    /// every `interval` (never again when zero), for the other nodes' `azure_reachability`,
    /// and makes missing mirror copies. In a local store: only the mirror copies (no backend
    /// call while every root holds every generation). Stops at shutdown.
    pub(crate) fn spawn_backend_probe(self: &Arc<Self>, interval: Duration) {
        let weak = Arc::downgrade(self);
        let slices = interval.as_millis() / 100;
        let spawned = std::thread::Builder::new()
            .name("ekm-backend-probe".into())
            .spawn(move || {
                loop {
                    match weak.upgrade() {
                        Some(e) if !e.is_shutting_down() && e.store.is_shared() => {
                            e.probe_backend()
                        }
                        Some(e) if !e.is_shutting_down() => {
                            let _ = e.catch_up_mirrors();
                        }
                        _ => return,
                    }
                    if slices == 0 {
                        return;
                    }
                    for _ in 0..slices {
                        std::thread::sleep(Duration::from_millis(100));
                        match weak.upgrade() {
                            Some(e) if !e.is_shutting_down() => {}
                            _ => return,
                        }
                    }
                }
            });
        if let Ok(handle) = spawned {
            self.threads.lock().push(handle);
        }
    }

    /// Resumes every job that holds a marker (queued or interrupted).
    pub(crate) fn resume_jobs(self: &Arc<Self>) -> Result<()> {
        let mut uuids: Vec<Uuid> = Vec::new();
        for (_, v) in self.scan_all(layout::MARKER)? {
            if let Ok(u) = Uuid::from_slice(&v) {
                if !uuids.contains(&u) {
                    uuids.push(u);
                }
            }
        }
        let running = self.running.lock().clone();
        for u in uuids.into_iter().filter(|u| !running.contains(u)) {
            self.spawn_job(u);
        }
        Ok(())
    }

    /// A job by uuid; [`ErrorKind::EntryNotFound`] when unknown.
    pub fn job(&self, uuid: Uuid) -> Result<Job> {
        let bytes = self
            .store
            .get(&layout::job(uuid))
            .map_err(store_failed)?
            .ok_or_else(|| Error::new(ErrorKind::EntryNotFound).with_target("uuid"))?;
        Job::decode(&bytes)
    }

    /// Every job the store holds (finished ones included), in uuid order: how a client that
    /// lost a job's uuid finds it again (`GET /api/cluster/jobs`).
    pub fn list_jobs(&self) -> Result<Vec<Job>> {
        self.scan_all(layout::JOB)?
            .iter()
            .map(|(_, v)| Job::decode(v))
            .collect()
    }

    /// Waits until the job ends or `timeout` passes; returns it as it then is.
    ///
    /// The job is read again when a job step here wakes the waiters, or 25 ms after the last
    /// read (a job run by another process wakes nobody here); on a cluster store never sooner
    /// than 20 ms after the last read: a rekey commits a batch every few milliseconds, and
    /// there each read is a round trip to etcd that competes with the job's own commits.
    pub fn wait_job(&self, uuid: Uuid, timeout: Duration) -> Result<Job> {
        const READ_AT_LEAST_EVERY: Duration = Duration::from_millis(25);
        let read_at_most_every = if self.store.is_shared() {
            Duration::from_millis(20)
        } else {
            Duration::ZERO
        };
        let deadline = Instant::now() + timeout;
        let mut guard = self.job_lock.lock();
        loop {
            let job = self.job(uuid)?;
            let read_at = Instant::now();
            if job.state.is_terminal() || read_at >= deadline {
                return Ok(job);
            }
            let earliest = (read_at + read_at_most_every).min(deadline);
            let latest = (read_at + READ_AT_LEAST_EVERY).min(deadline);
            loop {
                self.job_changed.wait_until(&mut guard, latest);
                if Instant::now() >= earliest {
                    break;
                }
            }
        }
    }

    /// Commits `txn` (which should include the job) and wakes waiters.
    pub(crate) fn commit_job_step(&self, txn: Transaction) -> std::result::Result<(), Stop> {
        let r = self.store.commit(txn);
        self.job_changed.notify_all();
        match r {
            Ok(()) => Ok(()),
            Err(crate::store::StoreError::Conflict(_)) => Err(Stop::Failed(
                Error::new(ErrorKind::StoreFailed)
                    .with_detail("The configuration changed while the job ran.")
                    .transient(None),
            )),
            Err(e) => Err(Stop::Failed(store_failed(e))),
        }
    }

    /// Saves the job's progress on its own.
    pub(crate) fn save_job(&self, job: &mut Job) -> std::result::Result<(), Stop> {
        let mut txn = Transaction::new();
        job.put(&mut txn);
        self.commit_job_step(txn)?;
        job.committed();
        Ok(())
    }

    /// Whether this runner lost the job (cluster stores): the job record is no longer what it
    /// last wrote, so another node took it over. Its writes are fenced; it must stop.
    pub(crate) fn job_lost(&self, job: &Job) -> bool {
        let Some(fence) = &job.fence else {
            return false;
        };
        match self.store.get(&layout::job(job.uuid)) {
            Ok(Some(now)) => now != *fence && Some(&now) != job.pending.as_ref(),
            Ok(None) => true,
            Err(_) => false,
        }
    }

    fn run_job(self: Arc<Self>, uuid: Uuid) {
        if !self.running.lock().insert(uuid) {
            return;
        }
        self.drive(uuid);
        self.running.lock().remove(&uuid);
        self.job_changed.notify_all();
    }

    /// The job as stored, ready to be run by this process: `None` when it ended, or when in a
    /// cluster store another live node runs it. In a cluster store its writes are fenced on
    /// the record as read.
    fn claimable_job(&self, uuid: Uuid) -> Option<Job> {
        let bytes = self.store.get(&layout::job(uuid)).ok()??;
        let mut job = Job::decode(&bytes).ok()?;
        if job.state.is_terminal() {
            return None;
        }
        let me = self.nodes[self.local].node.uuid;
        if self.store.is_shared() {
            if let Some(runner) = job.runner {
                if runner != me && self.node_alive(runner).unwrap_or(true) {
                    return None;
                }
            }
            job.fence = Some(bytes);
        }
        job.runner = Some(me);
        Some(job)
    }

    fn drive(&self, uuid: Uuid) {
        let Some(mut job) = self.claimable_job(uuid) else {
            return;
        };
        job.state = JobState::Running;
        if job.message == "Queued." {
            job.message = "Running.".into();
        }
        if self.save_job(&mut job).is_err() {
            return;
        }
        let mut retries = Retries::new(self.job_retry_budget);
        loop {
            let outcome = match job.kind {
                JobKind::RekeyInternal => self.run_rekey_internal(&mut job),
                JobKind::RekeyExternal => self.run_rekey_external(&mut job),
                JobKind::Restore => self.run_restore(&mut job),
                JobKind::Migrate => self.run_migrate(&mut job),
                JobKind::Erase => self.run_erase(&mut job),
            };
            let Err(Stop::Failed(e)) = outcome else {
                return;
            };
            if let Some(wait) = retries.next_wait(&e) {
                // Every runner resumes from its journal, so a retry is a resume.
                job.message = format!(
                    "Waiting {} s before retry {} (retrying for up to {} s in all) after: {}",
                    wait.as_secs_f64().ceil(),
                    retries.attempts,
                    self.job_retry_budget.as_secs(),
                    e.message()
                );
                if self.save_job(&mut job).is_ok() && self.sleep_unless_shutdown(wait) {
                    match self.claimable_job(uuid) {
                        Some(j) => {
                            job = j;
                            continue;
                        }
                        None => return,
                    }
                }
                if self.is_shutting_down() {
                    // Stays running; resumes at the next open.
                    return;
                }
            }
            let mut txn = Transaction::new();
            job.finish(&mut txn, Err(&e));
            // If even this fails the job stays running and resumes at the next open.
            let _ = self.commit_job_step(txn);
            return;
        }
    }

    /// Sleeps `wait`, waking early on shutdown; false when shutting down.
    fn sleep_unless_shutdown(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while !self.is_shutting_down() {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        }
        false
    }
}

/// A job's retry budget: exponential backoff from 1 s (at most 30 s a wait, or longer when the
/// backend asked for it), until the waits would exceed the budget.
struct Retries {
    budget: Duration,
    waited: Duration,
    attempts: u32,
}

impl Retries {
    fn new(budget: Duration) -> Self {
        Retries {
            budget,
            waited: Duration::ZERO,
            attempts: 0,
        }
    }

    /// How long to wait before retrying after `e`, or `None` to fail now.
    fn next_wait(&mut self, e: &Error) -> Option<Duration> {
        if !e.is_transient() {
            return None;
        }
        let backoff = Duration::from_secs(1 << self.attempts.min(5)).min(Duration::from_secs(30));
        // The backend's Retry-After, when it gave one, is honoured as asked.
        let wait = e.retry_after().unwrap_or(backoff);
        if self.waited + wait > self.budget {
            return None;
        }
        self.waited += wait;
        self.attempts += 1;
        Some(wait)
    }
}

pub(crate) fn not_found() -> Error {
    Error::new(ErrorKind::EntryNotFound).with_target("uuid")
}

/// Queries the job runners share.
impl Engine {
    /// The generations of `config` that have a wrapped KEK, with their records.
    pub(crate) fn kek_records(&self, config: Uuid) -> Result<Vec<WrappedKek>> {
        self.scan_all(&layout::kek_prefix(config))?
            .iter()
            .map(|(_, v)| WrappedKek::decode(v, &self.protection))
            .collect()
    }

    /// Number of index entries under `prefix`.
    fn count(&self, prefix: &[u8]) -> Result<u64> {
        self.store.count(prefix).map_err(store_failed)
    }

    /// [`ErrorKind::KeysOnAdminKeyManager`] when `config` is an SVM's and some of that SVM's
    /// keys still sit under the cluster's key manager (migrate them first).
    fn check_no_admin_keys(&self, config: &StoredConfig) -> Result<()> {
        let Some(svm) = config.svm_uuid() else {
            return Ok(());
        };
        let Some((cluster, _)) = self.config_for_scope(None)? else {
            return Ok(());
        };
        let prefix = layout::records_of(cluster.uuid, KeyOwner::Svm(svm));
        if !self
            .store
            .scan(&prefix, None, 1)
            .map_err(store_failed)?
            .is_empty()
        {
            return Err(Error::new(ErrorKind::KeysOnAdminKeyManager));
        }
        Ok(())
    }
}
