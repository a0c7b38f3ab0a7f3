//! The one door to the OS random number generator.
//!
//! Owns: every random byte ekm draws: key material, nonces, data key ids (other crates reach it
//! as `crypto::fill_random`).
//! Must never: keep random state in user space (so a forked process cannot repeat it), or go on
//! after the OS RNG failed.
//!
//! ```text
//!   secret (KeyMaterial::random)  ─┐
//!   crypto (nonces)               ─┼──► random::fill_random ──► getrandom (OS RNG)
//!   ids    (DataKeyId::random)    ─┘
//! ```

/// Fills `buf` from the OS RNG (fork-safe; no user-space state to duplicate).
pub fn fill_random(buf: &mut [u8]) {
    // The OS RNG failing is not a recoverable condition for a key manager: continuing would
    // create predictable keys. getrandom only fails on exotic platforms without an entropy source.
    getrandom::fill(buf).expect("the OS random number generator failed");
}
