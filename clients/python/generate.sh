#!/usr/bin/env bash
# Generates the protobuf and grpcio stubs of watchtower.v1 into
# src/watchtower_client/_proto/ (or the directory given), from proto/ at the
# repository root. They are committed so `pip install ./clients/python` needs
# no protoc; tests/test_stubs.py regenerates them and fails if they differ.
# PYTHON names an interpreter with grpcio-tools (default python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/src/watchtower_client/_proto}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${PYTHON:-python3}" -m grpc_tools.protoc -I "$here/../../proto" \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  "$here/../../proto/watchtower/v1/watchtower.proto"
mkdir -p "$out"
# The generated service module imports `watchtower.v1.watchtower_pb2` as a
# top-level package; inside this package it is a sibling module.
for file in watchtower_pb2.py watchtower_pb2.pyi watchtower_pb2_grpc.py; do
  sed 's/^from watchtower\.v1 import watchtower_pb2 as/from . import watchtower_pb2 as/' \
    "$tmp/watchtower/v1/$file" >"$out/$file"
done
