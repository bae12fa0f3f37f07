"""The committed stubs are exactly what generate.sh makes from proto/."""

import os
import pathlib
import subprocess
import sys

PACKAGE = pathlib.Path(__file__).resolve().parent.parent
COMMITTED = PACKAGE / "src" / "watchtower_client" / "_proto"
FILES = ["watchtower_pb2.py", "watchtower_pb2.pyi", "watchtower_pb2_grpc.py"]


def test_committed_stubs_match_the_proto(tmp_path):
    subprocess.run(
        ["bash", str(PACKAGE / "generate.sh"), str(tmp_path)],
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    stale = [f for f in FILES if (tmp_path / f).read_bytes() != (COMMITTED / f).read_bytes()]
    assert not stale, f"{stale} differ from proto/: run clients/python/generate.sh and commit"
