//! The store layout: every key ekm writes, in one table. The cluster store (etcd) maps these
//! keys one to one under its prefix, so this list must be complete.
//!
//! Owns: the name of every store key and prefix, and how each is built from its parts.
//! Must never: build a store key anywhere else; give two tables the same prefix.
//!
//! All keys are bytes: a one-letter table name and a `/`, then fixed-width binary parts —
//! `uuid` the 16 raw bytes, `gen` a big-endian u32, `id` the 32 raw bytes of a data key id,
//! `owner` the SVM uuid (nil for the cluster).
//!
//! | key | value | written by |
//! |---|---|---|
//! | `meta/format` | ASCII format version ([`crate::engine::FORMAT_VERSION`]) | the first open |
//! | `meta/protection-check` | GMAC of a constant under the protection key (shared stores only) | the first process of a cluster |
//! | `l/<node uuid>` | node liveness (JSON: KEK generations held, KMIP server state), bound to that process's lease in a shared store | each process, at open and on changes |
//! | `q/<config uuid>` | a restore request (the job uuid): every process unlocks that KEK on its nodes | restore, in a shared store |
//! | `c/<config uuid>` | configuration record (JSON, authenticated; `stored/mod.rs`) | create, patch, first KEK, rekeys |
//! | `s/c`, `s/v<svm uuid>` | the configuration uuid of that scope (uniqueness index) | create, delete |
//! | `k/<config uuid><gen>` | wrapped KEK record (`codec::WrappedKek`) | first KEK, rekeys |
//! | `p/<primary uuid><gen><mirror uuid>` | a mirror's copy of the primary's KEK generation (`codec::WrappedKek`, naming the mirror's key; `engine/protectors.rs`) | attach, first KEK, rekey switch, catch-up; removed with the generation or the mirror |
//! | `d/<id>` | the key's location: config uuid, owner kind, owner uuid | create, migrate, delete |
//! | `r/<config uuid><owner><id>` | wrapped data key record (`codec::WrappedDataKey`) | create, rekey-internal, migrate, delete |
//! | `e/<config uuid>` | deletion mark: empty, rewritten by every transaction that deletes an `r/` record of that configuration (a rekey page on etcd is fenced by its key span and this mark: `Store::rewrite_range`) | delete, migrate |
//! | `n/<node uuid><config uuid>` | node availability (JSON): wrapped KEK copy, loaded generation, last error | unlocks, restore, rekeys |
//! | `j/<job uuid>` | job record (JSON) with its journal | every job step |
//! | `a/<config uuid>` | marker: the uuid of the job working on that configuration | job start and end |
//! | `x/<config uuid><gen><node uuid>` | seals done with that generation by the process of that node, u64 big-endian (the generation's count is the sum) | creates (every 64 seals), rekey and migrate batches |
//! | `m/<id>` | KMIP attributes and state of a data key (JSON, owned by `ekm-kmip`; absent for keys never touched over KMIP) | KMIP Create, Register, attribute and state operations; removed with the key by delete |
//!
//! The order of `r/` makes "the keys of a configuration" and "the keys of one owner under a
//! configuration" prefix scans; rekey-internal rewrites a configuration's records in place, in
//! that order, with the last one done as its journaled cursor.

use uuid::Uuid;

use crate::ids::{DataKeyId, KeyOwner};

/// Format marker: `meta/format` → ASCII version.
pub const FORMAT: &[u8] = b"meta/format";
/// The protection key's check value in a shared store.
pub const PROTECTION_CHECK: &[u8] = b"meta/protection-check";
/// Prefix of node liveness records: `l/<node uuid 16>` → JSON, ephemeral.
pub const LIVENESS: &[u8] = b"l/";
/// Prefix of restore requests: `q/<config uuid 16>` → job uuid.
pub const RESTORE_REQUEST: &[u8] = b"q/";
/// Prefix of configuration records: `c/<config uuid 16>`.
pub const CONFIG: &[u8] = b"c/";
/// Prefix of the scope index: `s/c` (cluster) or `s/v<svm uuid 16>` → config uuid.
pub const SCOPE: &[u8] = b"s/";
/// Prefix of KEK records: `k/<config uuid 16><generation u32 BE>`.
pub const KEK: &[u8] = b"k/";
/// Prefix of mirror copies of KEK generations: `p/<primary uuid 16><generation u32 BE><mirror
/// uuid 16>`.
pub const PROTECTOR: &[u8] = b"p/";
/// Prefix of data key locations: `d/<key id 32>` → config uuid 16 | owner kind 1 |
/// owner uuid 16 (where the record is).
pub const DATA_KEY: &[u8] = b"d/";
/// Prefix of data key records: `r/<config uuid 16><owner uuid 16 (nil: cluster)><key id 32>`.
pub const RECORD: &[u8] = b"r/";
/// Prefix of deletion marks: `e/<config uuid 16>` → empty, rewritten by every deletion of one
/// of that configuration's `r/` records.
pub const DELETIONS: &[u8] = b"e/";
/// Prefix of node records: `n/<node uuid 16><config uuid 16>` → node availability (JSON).
pub const NODE: &[u8] = b"n/";
/// Prefix of job records: `j/<job uuid 16>` → job (JSON).
pub const JOB: &[u8] = b"j/";
/// Prefix of job markers: `a/<config uuid 16>` → the uuid of the job holding it.
pub const MARKER: &[u8] = b"a/";
/// Prefix of seal counters: `x/<config uuid 16><generation u32><writer node uuid 16>` → u64
/// big-endian.
pub const SEALS: &[u8] = b"x/";

/// Prefix of KMIP attribute records: `m/<key id 32>` → JSON (`ekm-kmip`).
pub const KMIP: &[u8] = b"m/";
/// Prefix of pending erases: `g/<key id 32>` → the erase record (JSON: the nodes that must
/// evict, the job tracking it), and `g/<key id 32><node uuid 16>` → empty, that node's
/// acknowledgement that it evicted the key.
pub const ERASE: &[u8] = b"g/";

fn join(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// `c/<uuid>`.
pub fn config(uuid: Uuid) -> Vec<u8> {
    join(CONFIG, &[uuid.as_bytes()])
}

/// `s/c` or `s/v<svm uuid>`.
pub fn scope(svm: Option<Uuid>) -> Vec<u8> {
    match svm {
        None => join(SCOPE, &[b"c"]),
        Some(u) => join(SCOPE, &[b"v", u.as_bytes()]),
    }
}

/// `k/<config uuid>` (prefix of a config's KEK generations).
pub fn kek_prefix(config: Uuid) -> Vec<u8> {
    join(KEK, &[config.as_bytes()])
}

/// `k/<config uuid><generation>`.
pub fn kek(config: Uuid, generation: u32) -> Vec<u8> {
    join(KEK, &[config.as_bytes(), &generation.to_be_bytes()])
}

/// `p/<primary uuid>` (every mirror copy of every generation of a primary).
pub fn protector_copies(primary: Uuid) -> Vec<u8> {
    join(PROTECTOR, &[primary.as_bytes()])
}

/// `p/<primary uuid><generation>` (the mirror copies of one generation).
pub fn protector_copies_of(primary: Uuid, generation: u32) -> Vec<u8> {
    join(PROTECTOR, &[primary.as_bytes(), &generation.to_be_bytes()])
}

/// `p/<primary uuid><generation><mirror uuid>`: `mirror`'s copy of that generation.
pub fn protector_copy(primary: Uuid, generation: u32, mirror: Uuid) -> Vec<u8> {
    join(
        PROTECTOR,
        &[
            primary.as_bytes(),
            &generation.to_be_bytes(),
            mirror.as_bytes(),
        ],
    )
}

/// `d/<key id>` (the location of a key).
pub fn data_key(id: &DataKeyId) -> Vec<u8> {
    join(DATA_KEY, &[id.as_bytes()])
}

/// `r/<config uuid>` (the records of a configuration, every owner).
pub fn records(config: Uuid) -> Vec<u8> {
    join(RECORD, &[config.as_bytes()])
}

/// `r/<config uuid><owner>` (one owner's records under a configuration).
pub fn records_of(config: Uuid, owner: KeyOwner) -> Vec<u8> {
    let o = owner.svm().unwrap_or_else(Uuid::nil);
    join(RECORD, &[config.as_bytes(), o.as_bytes()])
}

/// The record of one key.
pub fn record(config: Uuid, owner: KeyOwner, id: &DataKeyId) -> Vec<u8> {
    let mut k = records_of(config, owner);
    k.extend_from_slice(id.as_bytes());
    k
}

/// `e/<config uuid>`: the deletion mark of a configuration's records. Every transaction that
/// deletes an `r/<config>` record writes it, so that a rewrite of a page of those records
/// can see a deletion it would otherwise miss (`Store::rewrite_range`'s `deletion_mark`).
pub fn deletions(config: Uuid) -> Vec<u8> {
    join(DELETIONS, &[config.as_bytes()])
}

/// The configuration uuid at the start of a record key (`r/<config uuid>...`).
pub fn config_of_record(key: &[u8]) -> Option<Uuid> {
    let raw = key.strip_prefix(RECORD)?.get(..16)?;
    Uuid::from_slice(raw).ok()
}

/// The key id at the end of a record key.
pub fn id_of_record(key: &[u8]) -> Option<DataKeyId> {
    let raw: [u8; 32] = key.get(key.len().checked_sub(32)?..)?.try_into().ok()?;
    Some(DataKeyId::from_bytes(raw))
}

/// `n/<node uuid><config uuid>`.
pub fn node(node: Uuid, config: Uuid) -> Vec<u8> {
    join(NODE, &[node.as_bytes(), config.as_bytes()])
}

/// `n/<node uuid>` (every node record of one node).
pub fn nodes_of(node: Uuid) -> Vec<u8> {
    join(NODE, &[node.as_bytes()])
}

/// `j/<job uuid>`.
pub fn job(uuid: Uuid) -> Vec<u8> {
    join(JOB, &[uuid.as_bytes()])
}

/// `a/<config uuid>`: the marker of the job working on that configuration.
pub fn marker(config: Uuid) -> Vec<u8> {
    join(MARKER, &[config.as_bytes()])
}

/// `x/<config uuid>` (the seal counters of every generation of a configuration).
pub fn seals_of(config: Uuid) -> Vec<u8> {
    join(SEALS, &[config.as_bytes()])
}

/// `x/<config uuid><generation>` (every writer's seal count of one generation).
pub fn seals_of_generation(config: Uuid, generation: u32) -> Vec<u8> {
    join(SEALS, &[config.as_bytes(), &generation.to_be_bytes()])
}

/// `x/<config uuid><generation><writer node uuid>`: the seals one process (named by its local
/// node) did with that generation. One counter per writer, so that processes sharing a store
/// never overwrite each other's counts; the generation's count is their sum.
pub fn seals(config: Uuid, generation: u32, writer: Uuid) -> Vec<u8> {
    join(
        SEALS,
        &[
            config.as_bytes(),
            &generation.to_be_bytes(),
            writer.as_bytes(),
        ],
    )
}

/// `l/<node uuid>`: the liveness record of a node's process.
pub fn liveness(node: Uuid) -> Vec<u8> {
    join(LIVENESS, &[node.as_bytes()])
}

/// `q/<config uuid>`: a restore request for that configuration.
pub fn restore_request(config: Uuid) -> Vec<u8> {
    join(RESTORE_REQUEST, &[config.as_bytes()])
}

/// `g/<key id>`: the erase record of a deleted data key (and, as a prefix, its
/// acknowledgements).
pub fn erase(id: &DataKeyId) -> Vec<u8> {
    join(ERASE, &[id.as_bytes()])
}

/// `g/<key id><node>`: `node`'s acknowledgement that it evicted deleted key `id`.
pub fn erase_ack(id: &DataKeyId, node: Uuid) -> Vec<u8> {
    join(ERASE, &[id.as_bytes(), node.as_bytes()])
}

/// `m/<key id>`: the KMIP attributes and state of a data key.
pub fn kmip_attributes(id: &DataKeyId) -> Vec<u8> {
    join(KMIP, &[id.as_bytes()])
}
