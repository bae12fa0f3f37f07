//! libFuzzer entry point; the check is `watchtower_fuzz::websocket_json` (src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| watchtower_fuzz::websocket_json(data));
