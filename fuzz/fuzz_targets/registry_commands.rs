//! libFuzzer entry point; the check is `watchtower_fuzz::registry_commands` (src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| watchtower_fuzz::registry_commands(data));
