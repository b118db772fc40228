//! The password hashes Django writes (`django.contrib.auth.hashers`), verified so users
//! imported from a Django project log in with the password they already have.
//!
//! | Django hasher | stored as |
//! |---|---|
//! | `PBKDF2PasswordHasher` | `pbkdf2_sha256$<iterations>$<salt>$<base64 of PBKDF2-HMAC-SHA256, 32 bytes>` |
//! | `PBKDF2SHA1PasswordHasher` | `pbkdf2_sha1$<iterations>$<salt>$<base64 of PBKDF2-HMAC-SHA1, 20 bytes>` |
//! | `Argon2PasswordHasher` | `argon2` + a PHC string: `argon2$argon2id$v=19$m=102400,t=2,p=8$<salt>$<hash>` (older: `argon2$argon2i$...`, with or without `v=`) |
//! | `BCryptSHA256PasswordHasher` | `bcrypt_sha256$` + bcrypt over the lowercase hex SHA-256 of the password: `bcrypt_sha256$$2b$12$...` |
//! | `BCryptPasswordHasher` | `bcrypt$` + bcrypt over the password (truncated at 72 bytes): `bcrypt$$2b$12$...` |
//! | `ScryptPasswordHasher` | `scrypt$<n>$<salt>$<r>$<p>$<base64 of scrypt, 64 bytes>` (Django writes n=16384, r=8, p=1) |
//!
//! The password and the salt are UTF-8, as Django's `force_bytes` makes them. Comparisons are
//! constant-time (`subtle` for PBKDF2 and scrypt; the `argon2` and `bcrypt` crates' own
//! verification).
//!
//! Work factors beyond [`MAX_PBKDF2_ITERATIONS`], [`MAX_BCRYPT_COST`], [`MAX_SCRYPT_MEMORY`] /
//! [`MAX_SCRYPT_P`] and the argon2 limits in the parent module are not verified (a tampered or
//! absurd row must not hold a hashing permit for minutes, nor make us allocate gigabytes); such
//! a hash, like Django's other formats (`sha1`, `md5`, `unsalted_*`, `crypt`), never matches.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The most PBKDF2 iterations verified: Django 6.0 writes 1,200,000.
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;

/// The highest bcrypt cost verified: Django writes 12; each step doubles the work.
pub const MAX_BCRYPT_COST: u32 = 14;

/// The most memory a scrypt hash may need to be verified, in bytes: scrypt holds `128 * n * r`
/// bytes while it runs. Django writes n=16384, r=8 (16 MiB); this allows 64 MiB, so a hash
/// with a larger `n` or `r` (say, a tampered row asking for gigabytes) is refused unread.
pub const MAX_SCRYPT_MEMORY: u64 = 64 * 1024 * 1024;

/// The highest scrypt parallelism verified: Django writes 1. Its `p` passes run one after
/// another here, so `p` multiplies the time a verification holds a hashing permit.
pub const MAX_SCRYPT_P: u32 = 16;

/// The length of the scrypt output Django stores (its `dklen=64`).
const SCRYPT_LEN: usize = 64;

/// A Django hash this crate can verify, borrowed from the stored value.
#[derive(Debug)]
pub(super) enum DjangoHash<'a> {
    /// `pbkdf2_sha256$...` or `pbkdf2_sha1$...`.
    Pbkdf2 {
        prf: Prf,
        iterations: u32,
        salt: &'a str,
        hash: Vec<u8>,
    },
    /// `argon2$...`, held as the PHC string Django wraps (with `v=16` made explicit where
    /// Django's oldest hashes leave the version out, as the reference implementation reads them).
    Argon2(String),
    /// `bcrypt_sha256$<bcrypt>` (`sha256: true`) or `bcrypt$<bcrypt>`.
    Bcrypt { sha256: bool, bcrypt: &'a str },
    /// `scrypt$<n>$<salt>$<r>$<p>$<hash>`, its parameters within the limits above.
    Scrypt {
        params: scrypt::Params,
        salt: &'a str,
        hash: Vec<u8>,
    },
}

impl PartialEq for DjangoHash<'_> {
    fn eq(&self, other: &Self) -> bool {
        use DjangoHash::*;
        match (self, other) {
            (
                Pbkdf2 {
                    prf,
                    iterations,
                    salt,
                    hash,
                },
                Pbkdf2 {
                    prf: p2,
                    iterations: i2,
                    salt: s2,
                    hash: h2,
                },
            ) => (prf, iterations, salt, hash) == (p2, i2, s2, h2),
            (Argon2(a), Argon2(b)) => a == b,
            (
                Bcrypt { sha256, bcrypt },
                Bcrypt {
                    sha256: s2,
                    bcrypt: b2,
                },
            ) => (sha256, bcrypt) == (s2, b2),
            (
                Scrypt { params, salt, hash },
                Scrypt {
                    params: p2,
                    salt: s2,
                    hash: h2,
                },
            ) => {
                (params.log_n(), params.r(), params.p(), salt, hash)
                    == (p2.log_n(), p2.r(), p2.p(), s2, h2)
            }
            _ => false,
        }
    }
}

impl Eq for DjangoHash<'_> {}

/// The HMAC digest of a PBKDF2 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Prf {
    Sha256,
    Sha1,
}

impl Prf {
    fn output_len(self) -> usize {
        match self {
            Prf::Sha256 => 32,
            Prf::Sha1 => 20,
        }
    }
}

impl<'a> DjangoHash<'a> {
    /// The Django hash in `stored`, `None` when it is not one this crate verifies (another
    /// format, malformed, or beyond the work-factor limits).
    pub(super) fn parse(stored: &'a str) -> Option<Self> {
        let (algorithm, rest) = stored.split_once('$')?;
        match algorithm {
            "pbkdf2_sha256" => Self::pbkdf2(Prf::Sha256, rest),
            "pbkdf2_sha1" => Self::pbkdf2(Prf::Sha1, rest),
            "argon2" => Self::argon2(rest),
            "bcrypt_sha256" => Self::bcrypt(true, rest),
            "bcrypt" => Self::bcrypt(false, rest),
            "scrypt" => Self::scrypt(rest),
            _ => None,
        }
    }

    fn pbkdf2(prf: Prf, rest: &'a str) -> Option<Self> {
        let mut parts = rest.splitn(3, '$');
        let iterations = parts.next()?;
        let salt = parts.next()?;
        let hash = STANDARD.decode(parts.next()?).ok()?;
        // Django writes the iteration count with `%d`: plain decimal digits.
        if !iterations.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let iterations: u32 = iterations.parse().ok()?;
        let valid = (1..=MAX_PBKDF2_ITERATIONS).contains(&iterations)
            && !salt.is_empty()
            && hash.len() == prf.output_len();
        valid.then_some(DjangoHash::Pbkdf2 {
            prf,
            iterations,
            salt,
            hash,
        })
    }

    fn argon2(rest: &'a str) -> Option<Self> {
        // `argon2id$v=19$m=..,t=..,p=..$salt$hash`, or `argon2i$m=..$salt$hash` (version 0x10).
        let (variant, params) = rest.split_once('$')?;
        if !matches!(variant, "argon2id" | "argon2i" | "argon2d") {
            return None;
        }
        let phc = if params.starts_with("v=") {
            format!("${rest}")
        } else {
            format!("${variant}$v=16${params}")
        };
        Some(DjangoHash::Argon2(phc))
    }

    fn bcrypt(sha256: bool, bcrypt: &'a str) -> Option<Self> {
        // `$2b$12$` + 53 characters of salt and checksum.
        let cost: u32 = bcrypt.get(4..6)?.parse().ok()?;
        let shaped = bcrypt.len() == 60
            && bcrypt.is_ascii()
            && matches!(bcrypt.get(..4)?, "$2a$" | "$2b$" | "$2y$")
            && bcrypt.as_bytes()[6] == b'$';
        (shaped && (4..=MAX_BCRYPT_COST).contains(&cost))
            .then_some(DjangoHash::Bcrypt { sha256, bcrypt })
    }

    fn scrypt(rest: &'a str) -> Option<Self> {
        // Django: `"%s$%d$%s$%d$%d$%s" % (algorithm, n, salt, r, p, hash)`.
        let mut parts = rest.splitn(5, '$');
        let n = decimal(parts.next()?)?;
        let salt = parts.next()?;
        let r = u32::try_from(decimal(parts.next()?)?).ok()?;
        let p = u32::try_from(decimal(parts.next()?)?).ok()?;
        let hash = STANDARD.decode(parts.next()?).ok()?;
        // n a power of two above 1, and the memory and passes bounded before anything is
        // allocated.
        if !n.is_power_of_two() || n < 2 || salt.is_empty() || hash.len() != SCRYPT_LEN {
            return None;
        }
        let memory = 128u64.checked_mul(n)?.checked_mul(u64::from(r))?;
        if memory > MAX_SCRYPT_MEMORY || !(1..=MAX_SCRYPT_P).contains(&p) {
            return None;
        }
        let log_n = u8::try_from(n.trailing_zeros()).ok()?;
        let params = scrypt::Params::new(log_n, r, p).ok()?;
        Some(DjangoHash::Scrypt { params, salt, hash })
    }

    /// Whether `password` is the one this hash was made from. Blocking: runs the hash.
    /// (Argon2 hashes are verified by the parent module, which bounds their parameters.)
    pub(super) fn verify(&self, password: &str) -> bool {
        match self {
            DjangoHash::Pbkdf2 {
                prf,
                iterations,
                salt,
                hash,
            } => {
                let mut computed = [0u8; 32];
                let computed = &mut computed[..prf.output_len()];
                let (password, salt) = (password.as_bytes(), salt.as_bytes());
                match prf {
                    Prf::Sha256 => {
                        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, *iterations, computed)
                    }
                    Prf::Sha1 => {
                        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, *iterations, computed)
                    }
                }
                bool::from(computed.ct_eq(hash))
            }
            DjangoHash::Bcrypt { sha256, bcrypt } => {
                let verified = if *sha256 {
                    // Django's `binascii.hexlify(sha256(password).digest())`: lowercase hex.
                    let digest = Sha256::digest(password.as_bytes());
                    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                    bcrypt::verify(hex, bcrypt)
                } else {
                    bcrypt::verify(password, bcrypt)
                };
                verified.unwrap_or(false)
            }
            DjangoHash::Scrypt { params, salt, hash } => {
                let mut computed = [0u8; SCRYPT_LEN];
                scrypt::scrypt(password.as_bytes(), salt.as_bytes(), params, &mut computed).is_ok()
                    && bool::from(computed.ct_eq(hash))
            }
            DjangoHash::Argon2(_) => false,
        }
    }
}

/// A count as Django writes it (`%d`): decimal digits only, no sign or spaces.
fn decimal(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_sha256_vector_from_djangos_tests_parses() {
        let stored = "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=";
        let Some(DjangoHash::Pbkdf2 {
            prf,
            iterations,
            salt,
            hash,
        }) = DjangoHash::parse(stored)
        else {
            panic!("not parsed");
        };
        assert_eq!(
            (prf, iterations, salt, hash.len()),
            (Prf::Sha256, 390_000, "seasalt", 32)
        );
    }

    #[test]
    fn pbkdf2_sha1_with_few_iterations_matches_only_its_password() {
        // PBKDF2-HMAC-SHA1("password", "salt", 2) from RFC 6070, first 20 bytes.
        let stored = "pbkdf2_sha1$2$salt$6mwBTcctb4zNHtkqzh1B8NjeiVc=";
        let hash = DjangoHash::parse(stored).expect("parsed");
        assert!(hash.verify("password"));
        assert!(!hash.verify("Password"));
    }

    #[test]
    fn malformed_and_excessive_hashes_are_not_parsed() {
        for stored in [
            "pbkdf2_sha256$0$salt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
            "pbkdf2_sha256$+5$salt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
            "pbkdf2_sha256$9000000$salt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
            "pbkdf2_sha256$10$$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
            "pbkdf2_sha256$10$salt$not base64",
            "pbkdf2_sha256$10$salt$6mwBTcctb4zNHtkqzh1B8NjeiVc=",
            "bcrypt_sha256$$2b$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "bcrypt$$2b$05$short",
            "argon2$argon2x$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q",
            // scrypt: short hash, n not a power of two, n=2^20 with r=8 (1 GiB), p too high,
            // a sign, an empty salt.
            "scrypt$16384$salt$8$1$aGFzaA==",
            format!("scrypt$16383$salt$8$1${HASH64}").as_str(),
            format!("scrypt$1048576$salt$8$1${HASH64}").as_str(),
            format!("scrypt$16384$salt$4294967295$1${HASH64}").as_str(),
            format!("scrypt$16384$salt$8$17${HASH64}").as_str(),
            format!("scrypt$+16384$salt$8$1${HASH64}").as_str(),
            format!("scrypt$16384$$8$1${HASH64}").as_str(),
            "md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3",
            "sha1$$6d138ca3ae545631b3abd71a4f076ce759c5700b",
            "88a434c88cca4e900f7874cd98123f43",
        ] {
            assert_eq!(DjangoHash::parse(stored), None, "{stored}");
        }
    }

    /// 64 bytes of base64, the length of Django's scrypt output.
    const HASH64: &str =
        "Qj3+9PPyRjSJIebHnG81TMjsqtaIGxNQG/aEB/NYafTJ7tibgfYz71m0ldQESkXFRkdVCBhhY8mx7rQwite/Pw==";

    #[test]
    fn scrypt_with_djangos_parameters_parses_within_the_memory_cap() {
        let stored = format!("scrypt$16384$seasalt$8$1${HASH64}");
        let Some(DjangoHash::Scrypt { params, salt, hash }) = DjangoHash::parse(&stored) else {
            panic!("not parsed");
        };
        assert_eq!(
            (params.log_n(), params.r(), params.p(), salt, hash.len()),
            (14, 8, 1, "seasalt", 64)
        );
        // The largest accepted: 128 * n * r == MAX_SCRYPT_MEMORY.
        assert!(DjangoHash::parse(format!("scrypt$65536$s$8$1${HASH64}").as_str()).is_some());
        assert!(DjangoHash::parse(format!("scrypt$65536$s$9$1${HASH64}").as_str()).is_none());
    }

    #[test]
    fn argon2_without_version_is_read_as_version_16() {
        let stored = "argon2$argon2i$m=8,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNo";
        assert_eq!(
            DjangoHash::parse(stored),
            Some(DjangoHash::Argon2(
                "$argon2i$v=16$m=8,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNo".into()
            ))
        );
    }
}
