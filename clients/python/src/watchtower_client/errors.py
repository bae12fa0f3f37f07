"""Exceptions for Watchtower's errors, built from the gRPC status and its rich
details (google.rpc.BadRequest, ErrorInfo and RetryInfo in the
``grpc-status-details-bin`` trailer)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class WatchtowerError(Exception):
    """A call to Watchtower failed.

    Attributes:
        code: the gRPC status code.
        message: the server's message.
        reason: ``ErrorInfo.reason`` (``OUT_OF_RANGE``, ``QUEUE_FULL``, ...), or
            ``""`` when the server sent none.
        metadata: ``ErrorInfo.metadata`` (``command_id``, ``key``,
            ``applied_tick``, ``allowed``, ...).
        field: the request field at fault, from ``BadRequest`` (for a
            command, ``command.key`` or ``command.value``), or ``""``.
        description: the ``BadRequest`` description of that field.
        retry_after: seconds to wait before retrying, from ``RetryInfo``.
        index: for a batch (:meth:`Watchtower.apply`), the position of the
            refused command in it (from ``commands[i].value``), else ``None``.
    """

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field: str = ""
    description: str = ""
    retry_after: float | None = None
    index: int | None = None

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    @property
    def allowed(self) -> str:
        """What the server accepts for the faulty field, for example
        ``number in [0, 0.9]``, or ``""``."""
        return self.metadata.get("allowed", "")


class CommandRejected(WatchtowerError):
    """The engine refused a command (INVALID_ARGUMENT or FAILED_PRECONDITION):
    an unknown key, a value of the wrong type, out of range, or a parameter
    fixed at start-up. ``field``, ``allowed`` and ``reason`` say which."""


class QueueFull(WatchtowerError):
    """The command queue was full and nothing was queued; retry after
    ``retry_after`` seconds."""


class Unavailable(WatchtowerError):
    """The engine is not running, or has published nothing yet."""


def _batch_index(field_path: str) -> int | None:
    """The ``i`` of a batch field path ``commands[i]....``, if it is one."""
    match = re.match(r"commands\[(\d+)\]", field_path)
    return int(match.group(1)) if match else None


def from_rpc_error(error: grpc.RpcError) -> WatchtowerError:
    """Turns a failed call into the matching :class:`WatchtowerError`."""
    code = error.code()
    found = WatchtowerError(code=code, message=error.details() or "")
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            if bad_request.field_violations:
                violation = bad_request.field_violations[0]
                found.field = violation.field
                found.description = violation.description
                found.index = _batch_index(violation.field)
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found.reason = info.reason
            found.metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            found.retry_after = retry.retry_delay.ToTimedelta().total_seconds()
    kind = {
        grpc.StatusCode.INVALID_ARGUMENT: CommandRejected,
        grpc.StatusCode.FAILED_PRECONDITION: CommandRejected,
        grpc.StatusCode.RESOURCE_EXHAUSTED: QueueFull,
        grpc.StatusCode.UNAVAILABLE: Unavailable,
    }.get(code, WatchtowerError)
    return kind(**found.__dict__)
