#!/usr/bin/env bash
# Generates the Python protobuf and grpcio stubs for watchtower.v1 into gen/
# (not committed: always built from proto/, so they cannot drift from it).
# PYTHON names the interpreter with grpcio-tools (default python3).
set -euo pipefail
cd "$(dirname "$0")"
rm -rf gen
mkdir -p gen
"${PYTHON:-python3}" -m grpc_tools.protoc -I ../../proto \
  --python_out=gen --pyi_out=gen --grpc_python_out=gen \
  ../../proto/watchtower/v1/watchtower.proto
