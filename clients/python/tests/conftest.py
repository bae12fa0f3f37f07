"""Fixtures: the address of a running Watchtower server.

The tests run against a real server: tests/python_example.rs in the
repository starts the binary and sets WATCHTOWER_ADDR. Without it they fail
and say so; they never skip.
"""

import os

import pytest

from watchtower_client import Watchtower


@pytest.fixture(scope="session")
def address() -> str:
    addr = os.environ.get("WATCHTOWER_ADDR")
    if not addr:
        pytest.fail(
            "WATCHTOWER_ADDR is not set: start `watchtower` and set it to HOST:PORT, "
            "or run `./test`, whose tests/python_example.rs does both"
        )
    return addr


@pytest.fixture
def tower(address: str):
    with Watchtower(address) as client:
        yield client
