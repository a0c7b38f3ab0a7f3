//! Several roots of trust per KEK: a scope's primary configuration and up to two mirrors
//! (configurations created with `mirror_of`), each holding its own wrapped copy of every KEK
//! generation in use; any one of them unlocks the KEK.
//!
//! The primary's wrap stays where it always was (`k/<primary><gen>`); a mirror's copy of the
//! same generation is `p/<primary><gen><mirror>` (the same `WrappedKek` record, naming the
//! mirror's external key). The primary's record lists its mirrors in attach order; a mirror's
//! record names its primary. Mirrors own no data keys and no KEK of their own.
//!
//! | step | transaction (one `Store::commit`) | after a crash |
//! |---|---|---|
//! | attach | `Equals(primary record)`, `Absent(primary's job marker)`, `Equals(k/<primary><g>)` per generation; the mirror's record, the primary's (mirror appended), one copy per generation | no mirror, or a mirror with a copy of every generation |
//! | new generation (first KEK, rekey switch) | the primary's wrap, and each mirror's copy that could be made, with `Equals(mirror record)` | as before the step, or the new generation with the copies made |
//! | catch-up | `Equals(k/<primary><g>)`, `Equals(mirror record)`, `Absent(copy)`; the copy | the copy or nothing |
//! | retire (rekey end) | the generation's `k/` record and every copy of it | as before, or all gone |
//! | delete a mirror | `Equals` of both records; the mirror's record and copies, the primary without it | the mirror whole, or gone |
//!
//! Owns: which roots protect a scope, their copies, unlocking through a mirror, catching up.
//! Must never: leave a generation in use that no root can unwrap (the primary always wraps a
//! new generation before it is committed, see `rekey_internal.rs`); keep a copy whose
//! generation was retired; let a copy written for one mirror be used by another.

use uuid::Uuid;

use super::Engine;
use super::helpers::{now_secs, store_failed};
use super::key_table::NodeRuntime;
use crate::backend::BackendCall;
use crate::codec::{KekState, WrappedKek};
use crate::config::Protector;
use crate::crypto::Kek;
use crate::error::{Error, ErrorKind, Result};
use crate::hierarchy;
use crate::layout;
use crate::provider::Provider;
use crate::store::{Check, StoreError, Transaction};
use crate::stored::{ConfigParts, StoredConfig};
use crate::topology::Node;

/// Roots of trust one scope may have: its primary and two mirrors.
pub const MAX_ROOTS: usize = 3;

impl Engine {
    /// The mirrors of `primary` that exist, in attach order, with their record bytes.
    pub(crate) fn mirrors_of(
        &self,
        primary: &StoredConfig,
    ) -> Result<Vec<(StoredConfig, Vec<u8>)>> {
        let mut out = Vec::new();
        for m in primary.mirrors() {
            match self.load_config(*m) {
                Ok((c, b)) if c.mirror_of() == Some(primary.uuid) => out.push((c, b)),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::StoreFailed => return Err(e),
                // Gone, or unreadable (it does not authenticate): one bad mirror does not
                // disable the others; it shows as missing in `protectors`.
                Err(_) => {}
            }
        }
        Ok(out)
    }

    /// Wraps `kek` (a generation of `primary`) by every mirror of `primary` as the local node
    /// and adds each copy to `txn`, guarded by the mirror's record. Returns the mirrors that
    /// could not wrap it, with why (their copy is made later by [`Engine::catch_up_mirrors`]).
    pub(crate) fn wrap_for_mirrors(
        &self,
        primary: &StoredConfig,
        kek: &Kek,
        state: KekState,
        txn: &mut Transaction,
    ) -> Result<Vec<(Uuid, Error)>> {
        let mut failed = Vec::new();
        for (mirror, bytes) in self.mirrors_of(primary)? {
            match self.wrap_as(&mirror, primary.uuid, kek, state) {
                Ok(copy) => {
                    txn.check(Check::Equals(layout::config(mirror.uuid), bytes))
                        .put(
                            layout::protector_copy(primary.uuid, kek.generation(), mirror.uuid),
                            copy.encode(&self.protection)?,
                        );
                }
                Err(e) => failed.push((mirror.uuid, e)),
            }
        }
        Ok(failed)
    }

    /// One wrap of `kek`, a generation of `primary`, by `root`'s external key as the local
    /// node (`root` is `primary` itself for the primary's own wrap).
    pub(crate) fn wrap_as(
        &self,
        root: &StoredConfig,
        primary: Uuid,
        kek: &Kek,
        state: KekState,
    ) -> Result<WrappedKek> {
        let parts = root.unseal(&self.protection)?;
        let access = parts.access();
        let call = BackendCall {
            node: &self.nodes[self.local].node,
            access: &access,
        };
        hierarchy::wrap_kek(
            &*self.backend,
            &call,
            primary,
            parts.external_key(),
            kek,
            state,
            now_secs(),
        )
    }

    /// The mirrors of `primary` without a usable copy of `generation`, in attach order.
    pub(crate) fn mirrors_lacking(
        &self,
        primary: &StoredConfig,
        generation: u32,
    ) -> Result<Vec<Uuid>> {
        let (prim, _) = self.load_config(primary.uuid)?;
        Ok(self
            .mirrors_of(&prim)?
            .into_iter()
            .filter(|(m, _)| {
                !self
                    .mirror_copy(prim.uuid, generation, m)
                    .is_ok_and(|c| c.is_some())
            })
            .map(|(m, _)| m.uuid)
            .collect())
    }

    /// Adds to `txn` the deletion of every mirror's copy of `generation` of `primary`.
    pub(crate) fn drop_mirror_copies(
        &self,
        primary: Uuid,
        generation: u32,
        txn: &mut Transaction,
    ) -> Result<()> {
        // The copies found, and each current mirror's by name: a copy a catch-up wrote after
        // the scan (a cluster store's scan is not part of the commit) goes too. Each key once
        // (etcd refuses a transaction that names a key twice).
        let mut keys: std::collections::BTreeSet<Vec<u8>> = self
            .scan_all(&layout::protector_copies_of(primary, generation))?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        if let Ok((prim, _)) = self.load_config(primary) {
            for m in prim.mirrors() {
                keys.insert(layout::protector_copy(primary, generation, *m));
            }
        }
        for k in keys {
            txn.delete(k);
        }
        Ok(())
    }

    /// `wrapped`, a generation of `config`, unwrapped as node `rt`: by the configuration's own
    /// root first and, when its provider fails, by each mirror in attach order (the one used
    /// is remembered in `rt.unlocked_via`).
    pub(crate) fn unwrap_any_root(
        &self,
        rt: &NodeRuntime,
        config: &StoredConfig,
        wrapped: &WrappedKek,
    ) -> Result<Kek> {
        let g = wrapped.generation;
        match self.unwrap_kek(&rt.node, config, wrapped) {
            Ok(kek) => {
                rt.unlocked_via.write().remove(&(config.uuid, g));
                Ok(kek)
            }
            Err(e) if e.kind() == ErrorKind::KekUnavailable => {
                let (kek, mirror) = self.unwrap_through_mirrors(&rt.node, config, g, e)?;
                rt.unlocked_via.write().insert((config.uuid, g), mirror);
                Ok(kek)
            }
            Err(e) => Err(e),
        }
    }

    /// `generation` of `primary` unwrapped through its mirrors as `node`, in attach order:
    /// the KEK and the mirror that gave it. When none gives it, `primary_err` (the primary's
    /// own, transient when its provider was away), with each mirror's reason appended.
    pub(crate) fn unwrap_through_mirrors(
        &self,
        node: &Node,
        primary: &StoredConfig,
        generation: u32,
        primary_err: Error,
    ) -> std::result::Result<(Kek, Uuid), Error> {
        // As the primary is now: `primary` may predate an attach.
        let Ok(mirrors) = self
            .load_config(primary.uuid)
            .and_then(|(p, _)| self.mirrors_of(&p))
        else {
            return Err(primary_err);
        };
        let mut reasons = Vec::new();
        for (mirror, _) in mirrors {
            let copy = match self.mirror_copy(primary.uuid, generation, &mirror) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    reasons.push(format!("mirror {} holds no copy of it yet", mirror.uuid));
                    continue;
                }
                Err(e) => {
                    reasons.push(format!("mirror {}: {}", mirror.uuid, e.message()));
                    continue;
                }
            };
            match self.unwrap_kek(node, &mirror, &copy) {
                Ok(kek) => return Ok((kek, mirror.uuid)),
                Err(e) => reasons.push(format!("mirror {}: {}", mirror.uuid, e.message())),
            }
        }
        if reasons.is_empty() {
            return Err(primary_err);
        }
        let detail = format!(
            "{} Nor did its mirrors: {}.",
            primary_err.message(),
            reasons.join("; ")
        );
        Err(primary_err.with_detail(detail))
    }

    /// `mirror`'s copy of `generation` of `primary`, if it has one: authenticated, of that
    /// generation, and wrapped by the mirror's current external key.
    fn mirror_copy(
        &self,
        primary: Uuid,
        generation: u32,
        mirror: &StoredConfig,
    ) -> Result<Option<WrappedKek>> {
        let Some(bytes) = self
            .store
            .get(&layout::protector_copy(primary, generation, mirror.uuid))
            .map_err(store_failed)?
        else {
            return Ok(None);
        };
        let copy = WrappedKek::decode(&bytes, &self.protection)?;
        if copy.config != primary
            || copy.generation != generation
            || copy.key_id.as_str() != mirror.key_id_str()
        {
            return Err(Error::corrupt(&format!(
                "The copy of generation {generation} of configuration {primary} held for mirror {} is another KEK's or another key's; it is not used.",
                mirror.uuid
            )));
        }
        Ok(Some(copy))
    }

    /// The configuration `primary` a new root may be attached to, in the scope `svm` (if the
    /// body named one): not itself a mirror, not being deleted, of that scope, with room for
    /// one more root. Refusals are 262197 on `mirror_of` (or `svm`).
    pub(crate) fn mirror_target(
        &self,
        primary: Uuid,
        svm: Option<&crate::topology::SvmRef>,
    ) -> Result<StoredConfig> {
        let (prim, _) = self.load_config(primary).map_err(|e| {
            if e.kind() == ErrorKind::EntryNotFound {
                Error::invalid_value(
                    "mirror_of.uuid",
                    &format!("there is no configuration {primary} to mirror."),
                )
            } else {
                e
            }
        })?;
        if let Some(p) = prim.mirror_of() {
            return Err(Error::invalid_value(
                "mirror_of.uuid",
                &format!("{primary} is itself a mirror of {p}: attach the new root to {p}."),
            ));
        }
        if prim.deleting {
            return Err(Error::invalid_value(
                "mirror_of.uuid",
                &format!("{primary} is being deleted."),
            ));
        }
        if let Some(s) = svm {
            if Some(s.uuid()) != prim.svm_uuid() {
                return Err(Error::invalid_value(
                    "svm",
                    &format!(
                        "a mirror protects its primary's scope; {primary} is of {}: leave svm out.",
                        prim.svm_ref()
                            .map_or("the cluster".to_owned(), |s| format!("SVM {}", s.name()))
                    ),
                ));
            }
        }
        if 1 + prim.mirrors().len() >= MAX_ROOTS {
            return Err(Error::invalid_value(
                "mirror_of.uuid",
                &format!(
                    "a scope has at most {MAX_ROOTS} roots of trust, and {primary}'s has them all; delete one first."
                ),
            ));
        }
        Ok(prim)
    }

    /// Attaches the new configuration `parts` as a mirror of `primary`: proven like any
    /// configuration by the caller, then every KEK generation of the primary wrapped by it,
    /// committed with the mirror's record in one transaction (see the table above).
    pub(crate) fn attach_mirror(&self, parts: &ConfigParts) -> Result<StoredConfig> {
        let primary = parts
            .mirror_of
            .ok_or_else(|| Error::corrupt("A mirror without its primary."))?;
        for _ in 0..4 {
            let (prim, prim_bytes) = self.load_config(primary)?;
            self.mirror_target(primary, prim.svm_ref().as_ref())?;
            if self
                .store
                .get(&layout::marker(primary))
                .map_err(store_failed)?
                .is_some()
            {
                return Err(Error::new(ErrorKind::JobInProgress).with_detail(format!(
                    "A job runs on {primary}; attach the new root of trust when it has ended."
                )));
            }
            let record = StoredConfig::seal(parts, &self.protection)?;
            let mut txn = Transaction::new();
            txn.check(Check::Equals(layout::config(primary), prim_bytes))
                .check(Check::Absent(layout::marker(primary)))
                .check(Check::Absent(layout::config(parts.uuid)));
            for rec in self.kek_records(primary)? {
                let g = rec.generation;
                let kek = self.unlock_on(self.local, &prim, g)?;
                let copy = self.wrap_as(&record, primary, &kek, rec.state)?;
                let kek_bytes = self
                    .store
                    .get(&layout::kek(primary, g))
                    .map_err(store_failed)?
                    .ok_or_else(|| Error::new(ErrorKind::MissingWrappedKek))?;
                txn.check(Check::Equals(layout::kek(primary, g), kek_bytes))
                    .put(
                        layout::protector_copy(primary, g, parts.uuid),
                        copy.encode(&self.protection)?,
                    );
            }
            let mut updated = prim.clone();
            updated.add_mirror(parts.uuid);
            txn.put(layout::config(primary), updated.encode(&self.protection)?)
                .put(layout::config(parts.uuid), record.encode(&self.protection)?);
            match self.store.commit(txn) {
                Ok(()) => return Ok(record),
                // The primary changed (a rekey, another attach) or a job took it: again.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(store_failed(e)),
            }
        }
        Err(Error::new(ErrorKind::StoreFailed).with_detail(
            "The primary configuration kept changing while the mirror was attached; retry.",
        ))
    }

    /// Deletes mirror `uuid`: its record and every copy it holds, and its name from the
    /// primary's list, in one transaction (allowed while keys exist: the primary still
    /// protects them).
    pub(crate) fn detach_mirror(&self, uuid: Uuid) -> Result<()> {
        for _ in 0..4 {
            let (mirror, bytes) = self.load_config(uuid)?;
            let Some(primary) = mirror.mirror_of() else {
                return Err(Error::corrupt("Not a mirror."));
            };
            let mut txn = Transaction::new();
            txn.check(Check::Equals(layout::config(uuid), bytes))
                .check(Check::Absent(layout::marker(uuid)))
                .delete(layout::config(uuid));
            match self.load_config(primary) {
                Ok((mut prim, prim_bytes)) => {
                    prim.remove_mirror(uuid);
                    txn.check(Check::Equals(layout::config(primary), prim_bytes))
                        .put(layout::config(primary), prim.encode(&self.protection)?);
                }
                Err(e) if e.kind() == ErrorKind::EntryNotFound => {}
                Err(e) => return Err(e),
            }
            // Its copies found, and its copy of every generation by name: one a catch-up
            // wrote after the scan goes too (a new generation changes the primary's record,
            // checked above). Each key once.
            let mut keys: std::collections::BTreeSet<Vec<u8>> = self
                .scan_all(&layout::protector_copies(primary))?
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k.ends_with(uuid.as_bytes()))
                .collect();
            for rec in self.kek_records(primary)? {
                keys.insert(layout::protector_copy(primary, rec.generation, uuid));
            }
            for k in keys {
                txn.delete(k);
            }
            for n in &self.topology.nodes {
                txn.delete(layout::node(n.uuid, uuid));
            }
            match self.store.commit(txn) {
                Ok(()) => {
                    self.backend_checks.lock().retain(|(_, c), _| *c != uuid);
                    for n in &self.nodes {
                        n.unlocked_via.write().retain(|_, m| *m != uuid);
                    }
                    return Ok(());
                }
                Err(StoreError::Conflict(_)) => {
                    if self
                        .store
                        .get(&layout::marker(uuid))
                        .map_err(store_failed)?
                        .is_some()
                    {
                        return Err(Error::new(ErrorKind::JobInProgress));
                    }
                }
                Err(e) => return Err(store_failed(e)),
            }
        }
        Err(Error::new(ErrorKind::StoreFailed).with_detail(
            "The primary configuration kept changing while the mirror was deleted; retry.",
        ))
    }

    /// Refuses `what` (a job, a data key) on a mirror: it runs on the mirror's primary.
    pub(crate) fn refuse_on_mirror(cfg: &StoredConfig, what: &str) -> Result<()> {
        match cfg.mirror_of() {
            None => Ok(()),
            Some(p) => Err(Error::invalid_value(
                "uuid",
                &format!(
                    "{} is a mirror of {p} (another root of trust of its scope): {what} runs on {p}, and covers every root.",
                    cfg.uuid
                ),
            )),
        }
    }

    /// Makes every missing mirror copy of every KEK generation in use, as the local node: a
    /// root that was away when a generation was made catches up by itself (called after each
    /// backend probe). Returns the copies that could not be made yet, by mirror.
    pub fn catch_up_mirrors(&self) -> Vec<(Uuid, Error)> {
        let mut failed = Vec::new();
        let Ok(configs) = self.scan_all(layout::CONFIG) else {
            return failed;
        };
        for (_, bytes) in configs {
            let Ok(prim) = StoredConfig::decode(&bytes, &self.protection) else {
                continue;
            };
            if prim.mirrors().is_empty() {
                continue;
            }
            if let Err(e) = self.catch_up(&prim, &mut failed) {
                failed.push((prim.uuid, e));
            }
        }
        failed
    }

    fn catch_up(&self, prim: &StoredConfig, failed: &mut Vec<(Uuid, Error)>) -> Result<()> {
        let mirrors = self.mirrors_of(prim)?;
        for (k, kek_bytes) in self.scan_all(&layout::kek_prefix(prim.uuid))? {
            let rec = WrappedKek::decode(&kek_bytes, &self.protection)?;
            let g = rec.generation;
            for (mirror, mirror_bytes) in &mirrors {
                if self
                    .mirror_copy(prim.uuid, g, mirror)
                    .ok()
                    .flatten()
                    .is_some()
                {
                    continue;
                }
                let made = self
                    .unlock_on(self.local, prim, g)
                    .and_then(|kek| self.wrap_as(mirror, prim.uuid, &kek, rec.state));
                let copy = match made {
                    Ok(c) => c,
                    Err(e) => {
                        failed.push((mirror.uuid, e));
                        continue;
                    }
                };
                let key = layout::protector_copy(prim.uuid, g, mirror.uuid);
                let mut txn = Transaction::new();
                txn.check(Check::Equals(k.clone(), kek_bytes.clone()))
                    .check(Check::Equals(
                        layout::config(mirror.uuid),
                        mirror_bytes.clone(),
                    ));
                // Over a stale copy as read (rewritten by a rekey-external of the mirror), or
                // none: a copy made meanwhile by another process wins.
                match self.store.get(&key).map_err(store_failed)? {
                    Some(old) => txn.check(Check::Equals(key.clone(), old)),
                    None => txn.check(Check::Absent(key.clone())),
                };
                txn.put(key, copy.encode(&self.protection)?);
                match self.store.commit(txn) {
                    // Retired, rewrapped or the mirror changed meanwhile: the next round sees it.
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(store_failed(e)),
                }
            }
        }
        Ok(())
    }

    /// Every root of trust of `primary`'s scope, primary first, with the KEK generations in use
    /// that it lacks (store reads only, no backend call: what the metrics export).
    pub fn root_coverage(&self, primary: Uuid) -> Result<Vec<(Uuid, Provider, Vec<u32>)>> {
        let (prim, _) = self.load_config(primary)?;
        let generations: Vec<u32> = self
            .kek_records(primary)?
            .iter()
            .map(|k| k.generation)
            .collect();
        let mut out = vec![(prim.uuid, prim.provider(), Vec::new())];
        for (m, _) in self.mirrors_of(&prim)? {
            let missing = generations
                .iter()
                .copied()
                .filter(|g| !self.mirror_copy(primary, *g, &m).is_ok_and(|c| c.is_some()))
                .collect();
            out.push((m.uuid, m.provider(), missing));
        }
        Ok(out)
    }

    /// Every root of trust of `primary`'s scope, the primary first, then its mirrors in attach
    /// order: whether each holds every generation in use and whether it answers (one backend
    /// check per root from this process's nodes, as `azure_reachability` does).
    pub fn protectors(&self, primary: Uuid) -> Result<Vec<Protector>> {
        let mut out = Vec::with_capacity(MAX_ROOTS);
        for (uuid, provider, missing) in self.root_coverage(primary)? {
            let (root, _) = self.load_config(uuid)?;
            let reach = self.reachability_of(&root)?;
            let mut message = reach.message.clone();
            let fully_wrapped = missing.is_empty();
            if !missing.is_empty() {
                let gens: Vec<String> = missing.iter().map(u32::to_string).collect();
                let lacks = format!(
                    "Lacks its copy of KEK generation(s) {}; it is made once the root answers.",
                    gens.join(", ")
                );
                message = if message.is_empty() {
                    lacks
                } else {
                    format!("{lacks} {message}")
                };
            }
            out.push(Protector {
                uuid,
                kind: provider.kind(),
                fully_wrapped,
                reachable: reach.reachable,
                message,
            });
        }
        Ok(out)
    }
}
