//! Checking a backup password offline at iOS's real cost: the keybag's
//! PBKDF2-HMAC-SHA256 with 10,000,000 rounds, then PBKDF2-HMAC-SHA1 with
//! 10,000, then the class keys unwrapped.
//!
//! Goal: at most 1.5 s per candidate on one core. Prints the time of a
//! right and a wrong candidate through `Keybag::unlock` (the `pbkdf2` crate
//! over `sha2`), and, for the choice of crate, the same first derivation
//! through `pbkdf2` + `sha2` alone and through `ring` (which is in the build
//! already, for TLS).

use std::time::{Duration, Instant};

use unstuck::backup_folder::keybag::{ClassKeys, Keybag};

const DPIC: u32 = 10_000_000;
const ITER: u32 = 10_000;
const GOAL: Duration = Duration::from_millis(1500);

fn main() {
    let mut keys = ClassKeys::default();
    for class in [1u32, 3, 4, 5, 6, 7, 8, 9, 10, 11] {
        keys.insert(class, [class as u8; 32]);
    }
    let bag = Keybag::build(b"correct horse", &keys, b"bench", DPIC, ITER);
    let bag = Keybag::parse(&bag.to_bytes()).expect("the keybag just built");

    let time = |f: &dyn Fn() -> bool, expect: bool| {
        // The best of three: the figure is the machine's, not its neighbours'.
        (0..3)
            .map(|_| {
                let start = Instant::now();
                assert_eq!(f(), expect);
                start.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let right = time(&|| bag.unlock(b"correct horse").is_some(), true);
    let wrong = time(&|| bag.unlock(b"Tr0ub4dor&3").is_some(), false);

    let dp = bag.double_protection.as_ref().expect("built with DPIC");
    let ring = time(
        &|| {
            let mut out = [0u8; 32];
            let rounds = std::num::NonZeroU32::new(DPIC).expect("not zero");
            ring::pbkdf2::derive(
                ring::pbkdf2::PBKDF2_HMAC_SHA256,
                rounds,
                &dp.salt,
                b"correct horse",
                &mut out,
            );
            out != [0u8; 32]
        },
        true,
    );
    let rustcrypto = time(
        &|| {
            let mut out = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"correct horse", &dp.salt, DPIC, &mut out);
            out != [0u8; 32]
        },
        true,
    );

    println!("password check, {DPIC} SHA-256 + {ITER} SHA-1 PBKDF2 rounds, one core, best of 3:");
    println!(
        "  right password (Keybag::unlock): {:.3} s per candidate",
        right.as_secs_f64()
    );
    println!(
        "  wrong password (Keybag::unlock): {:.3} s per candidate",
        wrong.as_secs_f64()
    );
    println!(
        "  SHA-256 part, pbkdf2 crate + sha2: {:.3} s",
        rustcrypto.as_secs_f64()
    );
    println!(
        "  SHA-256 part, ring:               {:.3} s",
        ring.as_secs_f64()
    );
    let verdict = if wrong <= GOAL { "met" } else { "MISSED" };
    println!(
        "  goal: at most {:.1} s per candidate: {verdict}",
        GOAL.as_secs_f64()
    );
}
