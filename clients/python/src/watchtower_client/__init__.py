"""A Python client for Watchtower's gRPC API (``watchtower.v1``).

>>> from watchtower_client import Watchtower
>>> tower = Watchtower("127.0.0.1:50051")
>>> tower.set("fiscal.income_tax_rate", 0.25, reason="budget").applied_tick
>>> tower.record(seconds=5)["macro.unemployment_rate"].plot()
>>> read_run("watchtower-data/<run id>")["government.debt"].plot()
"""

from .client import CommandResult, Parameter, Watchtower, read_run, snapshot_row, to_frame
from .errors import CommandRejected, QueueFull, Unavailable, WatchtowerError

__all__ = [
    "CommandRejected",
    "CommandResult",
    "Parameter",
    "QueueFull",
    "Unavailable",
    "Watchtower",
    "WatchtowerError",
    "read_run",
    "snapshot_row",
    "to_frame",
]
