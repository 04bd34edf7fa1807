//! Property campaigns over every parser of outside input, on stable Rust: proptest
//! generates inputs (shaped like the real thing, then damaged), each property says
//! what must hold besides "no panic", and a failure shrinks to a small input.
//!
//! The test command runs a short campaign with a fixed seed (the same inputs each
//! run); `bench/fuzz` runs long ones with fresh seeds through the same code:
//! `WARSHIP_FUZZ_CASES` inputs per round (default 256), rounds until
//! `WARSHIP_FUZZ_SECS` have passed (default one round), `WARSHIP_FUZZ_SEED` (a
//! number) to replay a round.

mod bodies;
mod template;
mod text;
mod war;

use std::cell::RefCell;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

/// The short campaign's seed: CI tries the same inputs every run.
const FIXED_SEED: u64 = 0x5741_5253_4849_5031;

/// What a campaign saw.
#[derive(Default)]
struct Tally {
    tried: u64,
    slowest: Duration,
    slowest_input: String,
}

/// Runs `property` over inputs of `strategy` for the configured budget; panics with
/// the smallest failing input if any input panics or breaks the property.
pub fn campaign<S>(
    name: &str,
    strategy: S,
    property: impl Fn(&S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let cases: u32 = setting("WARSHIP_FUZZ_CASES").unwrap_or(256);
    let budget = setting("WARSHIP_FUZZ_SECS").map(Duration::from_secs);
    let replay: Option<u64> = setting("WARSHIP_FUZZ_SEED");
    let tally = RefCell::new(Tally::default());
    let started = Instant::now();
    loop {
        let seed = match (replay, budget) {
            (Some(seed), _) => seed,
            (None, None) => FIXED_SEED,
            (None, Some(_)) => rand_seed(),
        };
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 4096,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(
            config,
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
        );
        let result = runner.run(&strategy, |input| {
            let at = Instant::now();
            let outcome = property(&input);
            let took = at.elapsed();
            let mut tally = tally.borrow_mut();
            tally.tried += 1;
            if took > tally.slowest {
                tally.slowest = took;
                tally.slowest_input = shorten(&format!("{input:?}"), 160);
            }
            outcome
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(why, input)) => {
                report(name, &tally.borrow(), 1);
                panic!(
                    "fuzz {name}: seed {seed} found an input that fails: {why}\nsmallest input: {}",
                    shorten(&format!("{input:?}"), 4000)
                );
            }
            Err(TestError::Abort(why)) => panic!("fuzz {name}: campaign aborted: {why}"),
        }
        if replay.is_some() || budget.is_none_or(|b| started.elapsed() >= b) {
            break;
        }
    }
    report(name, &tally.borrow(), 0);
}

fn report(name: &str, tally: &Tally, failures: u32) {
    eprintln!(
        "fuzz {name}: {} inputs, {failures} failing, slowest {:.1} ms ({}), process peak RSS {} MiB",
        tally.tried,
        tally.slowest.as_secs_f64() * 1000.0,
        tally.slowest_input,
        crate::support::proc_status_kib("self", "VmHWM") / 1024
    );
}

fn setting<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}… ({} chars)", &text[..at], text.chars().count()),
        None => text.to_owned(),
    }
}

/// Text that is mostly what the parser expects, with the characters that break
/// parsers mixed in: quotes, escapes, `$`, whitespace of every kind, line breaks,
/// NUL, right-to-left marks, combining marks, emoji, and any other char.
pub fn nasty_text(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    use proptest::prelude::*;
    let piece = prop_oneof![
        4 => proptest::sample::select(words).prop_map(str::to_owned),
        3 => "[a-zA-Z0-9._:/@=-]{1,12}",
        2 => proptest::sample::select(&[
            "\"", "'", "\\", "$", "${", "}", " ", "\t", "\n", "\r\n", "\\\n", "\0", "\u{2028}", "\u{202e}",
            "\u{0301}", "\u{feff}", "😀", "=", ",", "[", "]", "#", ":", "@", "%", "\u{a0}",
        ][..])
        .prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}
