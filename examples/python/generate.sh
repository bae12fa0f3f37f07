#!/usr/bin/env bash
# Generates the Python protobuf and grpcio stubs for watchtower.v1 into gen/
# (not committed: always built from proto/, so they cannot drift from it).
set -euo pipefail
cd "$(dirname "$0")"
rm -rf gen
mkdir -p gen
python3 -m grpc_tools.protoc -I ../../proto \
  --python_out=gen --pyi_out=gen --grpc_python_out=gen \
  ../../proto/watchtower/v1/watchtower.proto
