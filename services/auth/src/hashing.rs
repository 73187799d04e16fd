//! Password hashing on a fixed set of threads, each with its argon2 memory allocated once.
//!
//! An argon2id hash with OWASP's baseline parameters fills 19 MiB. Run on tokio's blocking
//! pool, each hash allocated those 19 MiB afresh on whichever of its (up to 512) threads
//! it landed, and glibc kept every freed buffer in that thread's arena: a burst of 40
//! concurrent sign-ups left auth at 748 MB resident, never returned (docs/benchmarks.md,
//! "Auth's memory"). Here one thread per core takes hashes from a queue and reuses its one
//! buffer, so memory is bounded by the core count (~19 MiB each, allocated on the thread's
//! first hash) whatever the burst, and no hash pays ~4,800 page faults mapping fresh
//! memory. How many hashes may wait is [`crate::limits::Limits::hash_slot`]'s business.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordVerifier, Version};
use tokio::sync::oneshot;

/// OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
pub fn params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<anyhow::Result<String>>,
    },
    Verify {
        password: String,
        phc: String,
        reply: oneshot::Sender<bool>,
    },
}

/// The hashing threads; cloning shares them. They end when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Hashers {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Hash { .. } => "Job::Hash(…)",
            Job::Verify { .. } => "Job::Verify(…)",
        })
    }
}

impl Hashers {
    pub fn start(threads: usize) -> std::io::Result<Hashers> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Hashers { jobs })
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) of `password` with a fresh salt.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Hash { password, reply })
            .map_err(|_| anyhow::anyhow!("the hashing threads are gone"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("a hashing thread died"))?
    }

    /// Whether `password` matches the PHC string `phc` (false for a malformed one).
    pub async fn verify(&self, password: String, phc: String) -> anyhow::Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Verify {
                password,
                phc,
                reply,
            })
            .map_err(|_| anyhow::anyhow!("the hashing threads are gone"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("a hashing thread died"))
    }
}

fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    // Allocated on the first hash this thread computes, then reused for every one.
    let mut memory: Vec<Block> = Vec::new();
    loop {
        // The lock is held only to take one job, never while hashing.
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        match job {
            Job::Hash { password, reply } => {
                let _ = reply.send(hash_with(&mut memory, &password));
            }
            Job::Verify {
                password,
                phc,
                reply,
            } => {
                let _ = reply.send(verify_with(&mut memory, &password, &phc));
            }
        }
    }
}

fn blocks<'a>(memory: &'a mut Vec<Block>, params: &Params) -> &'a mut [Block] {
    if memory.len() < params.block_count() {
        *memory = vec![Block::default(); params.block_count()];
    }
    &mut memory[..params.block_count()]
}

pub fn hash_with(memory: &mut Vec<Block>, password: &str) -> anyhow::Result<String> {
    let params = params();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let argon = argon2();
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        argon
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                out,
                blocks(memory, &params),
            )
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params)
            .try_into()
            .map_err(|e| anyhow::anyhow!("parameters: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

pub fn verify_with(memory: &mut Vec<Block>, password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else {
        return false;
    };
    let ours = params();
    let same = Params::try_from(&hash).is_ok_and(|p| {
        p.m_cost() == ours.m_cost() && p.t_cost() == ours.t_cost() && p.p_cost() == ours.p_cost()
    }) && Algorithm::try_from(hash.algorithm) == Ok(Algorithm::Argon2id)
        && hash.version == Some(Version::V0x13.into());
    if !same {
        // Made with other parameters (none are yet): the crate's own check, which
        // allocates for this one hash.
        return argon2().verify_password(password.as_bytes(), &hash).is_ok();
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(
            ours.m_cost(),
            ours.t_cost(),
            ours.p_cost(),
            Some(expected.len()),
        )
        .expect("valid argon2 parameters"),
    );
    let computed = Output::init_with(expected.len(), |out| {
        argon
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                out,
                blocks(memory, &ours),
            )
            .map_err(|_| argon2::password_hash::Error::Crypto)
    });
    // `Output`'s equality is constant-time.
    computed.is_ok_and(|c| c == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher;

    #[test]
    fn hashes_verify_both_ways_with_the_crates_own_code() {
        let mut memory = Vec::new();
        let ours = hash_with(&mut memory, "correct horse").unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        // The crate's verifier accepts ours, and ours accepts the crate's.
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2().verify_password(b"correct horse", &parsed).is_ok());
        let theirs = argon2()
            .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_with(&mut memory, "correct horse", &theirs));
        assert!(!verify_with(&mut memory, "correct horsf", &theirs));
        assert!(!verify_with(&mut memory, "correct horsf", &ours));
        // The same buffer served every one of them.
        assert_eq!(memory.len(), params().block_count());
    }

    #[test]
    fn a_hash_with_other_parameters_still_verifies() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw-12345", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        let mut memory = Vec::new();
        assert!(verify_with(&mut memory, "pw-12345", &weak));
        assert!(!verify_with(&mut memory, "pw-12346", &weak));
    }

    #[test]
    fn garbage_never_verifies() {
        let mut memory = Vec::new();
        for phc in [
            "",
            "$argon2id$",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
        ] {
            assert!(!verify_with(&mut memory, "x", phc), "{phc}");
        }
    }
}
