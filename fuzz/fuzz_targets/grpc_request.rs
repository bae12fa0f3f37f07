//! libFuzzer entry point; the check is `watchtower_fuzz::grpc_request` (src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| watchtower_fuzz::grpc_request(data));
