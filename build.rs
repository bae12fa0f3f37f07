//! Generates the watchtower.v1 messages and service stubs, plus the file
//! descriptor set that server reflection serves, and canonical-JSON serde
//! impls (pbjson) for the legacy WebSocket path. It runs the protoc shipped by
//! protoc-bin-vendored, so building needs no protoc installed by hand; a
//! `PROTOC` in the environment still wins.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    match env::var_os("PROTOC") {
        Some(protoc) => config.protoc_executable(protoc),
        None => config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?),
    };
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("watchtower_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .compile_with_config(
            config,
            &["proto/watchtower/v1/watchtower.proto"],
            &["proto"],
        )?;
    // A second, server-only rendering of the service in which the telemetry
    // response is a pre-encoded frame: each snapshot is encoded once and the
    // bytes are shared by every subscriber. Every other type is the one above.
    let encoded_dir = out_dir.join("encoded");
    std::fs::create_dir_all(&encoded_dir)?;
    let mut config = tonic_prost_build::Config::new();
    match env::var_os("PROTOC") {
        Some(protoc) => config.protoc_executable(protoc),
        None => config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?),
    };
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(&encoded_dir)
        .extern_path(
            ".watchtower.v1.SubscribeTelemetryResponse",
            "crate::server::hub::EncodedTelemetry",
        )
        .extern_path(".watchtower.v1", "crate::pb")
        .compile_with_config(
            config,
            &["proto/watchtower/v1/watchtower.proto"],
            &["proto"],
        )?;

    // Canonical protobuf JSON (serde) for the legacy WebSocket path, generated
    // from the same descriptors, so no hand-kept JSON structs can drift.
    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[".watchtower.v1"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
