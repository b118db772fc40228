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
//!
//! The password and the salt are UTF-8, as Django's `force_bytes` makes them. Comparisons are
//! constant-time (`subtle` for PBKDF2; the `argon2` and `bcrypt` crates' own verification).
//!
//! Work factors beyond [`MAX_PBKDF2_ITERATIONS`], [`MAX_BCRYPT_COST`] and the argon2 limits in
//! the parent module are not verified (a tampered or absurd row must not hold a hashing permit
//! for minutes); such a hash, like Django's other formats (`scrypt`, `sha1`, `md5`,
//! `unsalted_*`, `crypt`), never matches.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The most PBKDF2 iterations verified: Django 6.0 writes 1,200,000.
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;

/// The highest bcrypt cost verified: Django writes 12; each step doubles the work.
pub const MAX_BCRYPT_COST: u32 = 14;

/// A Django hash this crate can verify, borrowed from the stored value.
#[derive(Debug, PartialEq, Eq)]
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
}

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
            DjangoHash::Argon2(_) => false,
        }
    }
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
            "scrypt$16384$salt$8$1$aGFzaA==",
            "md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3",
            "sha1$$6d138ca3ae545631b3abd71a4f076ce759c5700b",
            "88a434c88cca4e900f7874cd98123f43",
        ] {
            assert_eq!(DjangoHash::parse(stored), None, "{stored}");
        }
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
