//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/*`) through the
//! fuzz targets' own checks (`fuzz/src/lib.rs`, compiled here as a module)
//! on stable, so a regression in a decoder or the registry path fails
//! `./test`, not only a nightly fuzz run.

#[path = "../fuzz/src/lib.rs"]
mod fuzz_checks;

use std::path::Path;

#[test]
fn every_committed_fuzz_input_passes_its_target_s_checks() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, check) in fuzz_checks::TARGETS {
        let dir = corpus.join(target);
        let inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a readable corpus entry").path())
            .collect();
        assert!(!inputs.is_empty(), "{} holds no inputs", dir.display());
        for input in &inputs {
            let data = std::fs::read(input).expect("a readable corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", input.display());
        }
        println!("{target}: {} inputs replayed", inputs.len());
    }
}
