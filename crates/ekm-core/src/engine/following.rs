//! Following the other processes that share the store (one per node): a key deleted anywhere
//! is evicted here and the eviction acknowledged (the delete's erase completes once every node
//! has: `erase.rs`; a node cut off from the store keeps serving until it is back, and until
//! then the erase names it as pending), a retired KEK generation or a deleted
//! configuration is forgotten, a changed configuration's vault is checked again, and a restore
//! another node asked for is carried out on this process's nodes.
//!
//! Owns: the store watches and what each change does here.
//! Must never: block a watch thread on the store or the backend; keep serving a key, KEK or
//! configuration that is gone once its deletion is seen (or, after lost changes, found out).
//!
//! | watched | change | done here |
//! |---|---|---|
//! | `d/` | delete | the key evicted from every node table, then the eviction acknowledged (`erase.rs`) |
//! | `k/` | delete | that KEK generation forgotten on every node |
//! | `c/` | put | the vault checked again (`status.rs`) |
//! | `c/` | delete | the configuration forgotten, its backend checks dropped |
//! | `q/` | put | restore here: unlock the active KEK on every node lacking it |
//! | any | resync (changes lost) | tables cleared and every pending erase acknowledged / what is gone forgotten / every request honoured |

use std::sync::Arc;

use uuid::Uuid;

use super::Engine;
use super::helpers::store_failed;
use crate::error::Result;
use crate::ids::DataKeyId;
use crate::layout;
use crate::store::{Change, ChangeCallback};

impl Engine {
    /// In a store shared with other processes (one per node): follows what they change — a key
    /// deleted anywhere is evicted here and the eviction acknowledged (`erase.rs`), a retired KEK
    /// generation or a deleted configuration is forgotten — and keeps this process's liveness
    /// record, bound to its lease, so that other nodes see it alive.
    pub(crate) fn follow_other_processes(self: &Arc<Self>) -> Result<()> {
        self.follow(
            layout::DATA_KEY,
            Watched::Deletes,
            Engine::on_data_key_change,
        )?;
        self.follow(layout::KEK, Watched::Deletes, Engine::on_kek_change)?;
        self.follow(layout::CONFIG, Watched::All, Engine::on_config_change)?;
        self.follow(
            layout::RESTORE_REQUEST,
            Watched::All,
            Engine::on_restore_request,
        )?;
        self.write_liveness();
        // Starting, this process holds no deleted key: acknowledge every pending erase, and
        // carry on the erase jobs whose runner may be gone.
        let engine = self.clone();
        off_the_watch(move || {
            engine.acknowledge_every_erase();
            engine.resume_erase_jobs();
        });
        Ok(())
    }

    /// Watches `prefix` for as long as the engine lives, handing each change to `on_change`.
    fn follow(
        self: &Arc<Self>,
        prefix: &'static [u8],
        watched: Watched,
        on_change: fn(Arc<Engine>, Change),
    ) -> Result<()> {
        let weak = Arc::downgrade(self);
        let callback: ChangeCallback = Box::new(move |change| {
            if let Some(engine) = weak.upgrade() {
                on_change(engine, change);
            }
        });
        match watched {
            Watched::Deletes => self.store.watch_deletes(prefix, callback),
            Watched::All => self.store.watch(prefix, callback),
        }
        .map_err(store_failed)
    }

    /// `d/`: a key deleted anywhere is evicted from every node table.
    fn on_data_key_change(self: Arc<Self>, change: Change) {
        let k = match change {
            Change::Delete(k) => k,
            // Deletes may have been missed: every table refills from the store.
            // The tables hold nothing deleted now: every pending erase is acknowledged (off
            // the watch thread: it writes the store).
            Change::Resync => {
                for n in &self.nodes {
                    n.table.clear();
                }
                off_the_watch(move || self.acknowledge_every_erase());
                return;
            }
            Change::Put(..) => return,
        };
        if let Some(id) = k
            .strip_prefix(layout::DATA_KEY)
            .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
            .map(DataKeyId::from_bytes)
        {
            for n in &self.nodes {
                n.table.evict(&id);
            }
            // Evicted everywhere here: say so, so that the delete's erase can complete.
            off_the_watch(move || self.acknowledge_erase(&id));
        }
    }

    /// `k/`: a retired KEK generation is forgotten on every node.
    fn on_kek_change(self: Arc<Self>, change: Change) {
        let k = match change {
            Change::Delete(k) => k,
            // Off the watch thread: it reads the store.
            Change::Resync => {
                off_the_watch(move || self.forget_what_is_gone());
                return;
            }
            Change::Put(..) => return,
        };
        let Some(rest) = k.strip_prefix(layout::KEK) else {
            return;
        };
        if let (Some(config), Some(generation)) = (
            rest.get(..16).and_then(|b| Uuid::from_slice(b).ok()),
            rest.get(16..20)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes),
        ) {
            for n in &self.nodes {
                n.forget_generation(config, generation);
            }
        }
    }

    /// `c/`: a deleted configuration is forgotten; a new or changed one has its vault checked.
    fn on_config_change(self: Arc<Self>, change: Change) {
        let k = match change {
            Change::Delete(k) => k,
            Change::Resync => {
                off_the_watch(move || self.forget_what_is_gone());
                return;
            }
            // A new or changed configuration (credentials, key): check its vault from here
            // now, for every node's azure_reachability, rather than at the next periodic
            // probe. Off the watch thread: it calls the backend.
            Change::Put(_, v) => {
                off_the_watch(move || self.probe_backend_of(&v));
                return;
            }
        };
        if let Some(config) = k
            .strip_prefix(layout::CONFIG)
            .and_then(|b| Uuid::from_slice(b).ok())
        {
            for n in &self.nodes {
                n.forget_config(config);
            }
            self.backend_checks.lock().retain(|(_, c), _| *c != config);
        }
    }

    /// `q/`: a restore another node asked for is carried out on this process's nodes.
    fn on_restore_request(self: Arc<Self>, change: Change) {
        let k = match change {
            Change::Put(k, _) => k,
            // A request may have been missed: honour every one still there.
            Change::Resync => {
                off_the_watch(move || {
                    for config in self.restore_requests() {
                        self.restore_here_in_background(config);
                    }
                });
                return;
            }
            Change::Delete(_) => return,
        };
        if let Some(config) = k
            .strip_prefix(layout::RESTORE_REQUEST)
            .and_then(|b| Uuid::from_slice(b).ok())
        {
            self.restore_here_in_background(config);
        }
    }

    /// After lost changes: forgets every KEK generation and configuration this process holds
    /// that is no longer in the store (retired or deleted while the changes were lost).
    pub(crate) fn forget_what_is_gone(&self) {
        for rt in &self.nodes {
            let held: Vec<(Uuid, u32)> = rt.keks.read().keys().copied().collect();
            for (config, generation) in held {
                match self.store.get(&layout::config(config)) {
                    Ok(None) => rt.forget_config(config),
                    Ok(Some(_)) => {
                        if let Ok(None) = self.store.get(&layout::kek(config, generation)) {
                            rt.forget_generation(config, generation);
                        }
                    }
                    // Unreadable now: keep serving; the next resync or change decides.
                    Err(_) => {}
                }
            }
        }
    }

    /// The configurations with a restore request in the store.
    pub(crate) fn restore_requests(&self) -> Vec<Uuid> {
        let Ok(requests) = self.scan_all(layout::RESTORE_REQUEST) else {
            return Vec::new();
        };
        requests
            .iter()
            .filter_map(|(k, _)| {
                k.strip_prefix(layout::RESTORE_REQUEST)
                    .and_then(|b| Uuid::from_slice(b).ok())
            })
            .collect()
    }

    /// [`Engine::restore_here`] off the caller's thread (an unlock calls the backend), one
    /// thread per configuration at most: a request arriving while one runs makes it run once
    /// more rather than start another thread.
    pub(crate) fn restore_here_in_background(self: &Arc<Self>, config: Uuid) {
        {
            let mut restoring = self.restoring.lock();
            if let Some(again) = restoring.get_mut(&config) {
                *again = true;
                return;
            }
            restoring.insert(config, false);
        }
        let engine = self.clone();
        off_the_watch(move || {
            loop {
                engine.restore_here(config);
                let mut restoring = engine.restoring.lock();
                match restoring.get_mut(&config) {
                    Some(again) if *again => *again = false,
                    _ => {
                        restoring.remove(&config);
                        return;
                    }
                }
            }
        });
    }

    /// Unlocks the active KEK of `config` on every node of this process that lacks it and
    /// loads its keys (a restore asked for by another node). Failures are recorded in the
    /// node records, where the asking node reads them.
    pub(crate) fn restore_here(&self, config: Uuid) {
        let Ok((cfg, _)) = self.load_config(config) else {
            return;
        };
        let Some(g) = cfg.active_generation else {
            return;
        };
        for idx in 0..self.nodes.len() {
            if self.nodes[idx].kek(config, g).is_none() && self.unlock_on(idx, &cfg, g).is_ok() {
                let _ = self.load_table(idx, &cfg);
            }
        }
    }
}

/// Which changes a watch reports.
enum Watched {
    /// Deletions only (and resyncs).
    Deletes,
    /// Puts and deletions.
    All,
}

/// Runs `f` on a thread of its own, off the watch thread (which must not block on the store
/// or the backend). Never panics: when no thread can be had, `f` runs here after all — late
/// is better than a watch that dies and stops evicting deleted keys.
fn off_the_watch(f: impl FnOnce() + Send + 'static) {
    let f = std::sync::Mutex::new(Some(f));
    let run = move || {
        if let Some(f) = f.lock().ok().and_then(|mut g| g.take()) {
            f();
        }
    };
    let run = std::sync::Arc::new(run);
    let spawned = {
        let run = run.clone();
        std::thread::Builder::new()
            .name("ekm-follow".into())
            .spawn(move || run())
    };
    if spawned.is_err() {
        run();
    }
}
