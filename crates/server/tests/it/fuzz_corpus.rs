//! Every input in the fuzzers' seed corpus and every finding they ever
//! made (`fuzz/corpus/`, `fuzz/regressions/`), replayed through the same
//! entry points on every `cargo test`: a fixed finding stays fixed without
//! cargo fuzz installed.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 7] = [
    (
        "upstream_response",
        canary_server::fuzzing::upstream_response,
    ),
    ("exposition", canary_server::fuzzing::exposition),
    ("config", canary_server::fuzzing::config),
    ("api_json", canary_server::fuzzing::api_json),
    ("api_query", canary_server::fuzzing::api_query),
    ("access_log", canary_server::fuzzing::access_log),
    ("override_header", canary_server::fuzzing::override_header),
];

#[test]
fn every_seed_and_every_past_finding_passes_its_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (name, target) in TARGETS {
        let mut replayed = 0;
        for folder in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let input = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&input));
                assert!(outcome.is_ok(), "{name}: {} fails", path.display());
                replayed += 1;
            }
        }
        assert!(replayed > 0, "{name} has no seed in fuzz/corpus/{name}");
    }
}
