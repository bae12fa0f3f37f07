"""The Watchtower client: one gRPC channel, blocking calls, telemetry as
protobuf snapshots or pandas DataFrames."""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import pandas as pd

from ._proto import watchtower_pb2 as pb
from ._proto import watchtower_pb2_grpc as pb_grpc
from .errors import from_rpc_error

#: A parameter's value as Python sees it.
Value = float | int | bool

#: The snapshot's groups of indicators that become DataFrame columns
#: ``<group>.<field>``.
INDICATOR_GROUPS = ("macro", "agents", "government", "engine")


@dataclass(frozen=True)
class Parameter:
    """One parameter of the engine's registry.

    Attributes:
        key: namespaced key, for example ``fiscal.income_tax_rate``.
        description: what it does in the model.
        unit: unit of the value, for example ``ratio``.
        type: ``number``, ``integer`` or ``flag``.
        minimum: smallest accepted value (``None`` for flags).
        maximum: largest accepted value (``None`` for flags).
        default: value from the embedded defaults.
        current: value in force now.
        mutable: ``False`` for structural parameters fixed at start-up.
        step: suggested step for user interfaces.
    """

    key: str
    description: str
    unit: str
    type: str
    minimum: Value | None
    maximum: Value | None
    default: Value | None
    current: Value | None
    mutable: bool
    step: float


@dataclass(frozen=True)
class CommandResult:
    """The engine's verdict on an applied command.

    Attributes:
        command_id: the command's id (assigned by the server).
        key: the parameter changed.
        old: its value before.
        new: its value now.
        applied_tick: the tick whose Phase 0 applied it; that tick's snapshot is
            the first to show the new value.
        reason: the reason given with the command.
    """

    command_id: str
    key: str
    old: Value | None
    new: Value | None
    applied_tick: int
    reason: str


def _value(value: pb.ParameterValue) -> Value | None:
    kind = value.WhichOneof("kind")
    return None if kind is None else getattr(value, kind)


def _to_wire(value: Value) -> pb.ParameterValue:
    # bool first: in Python a bool is also an int.
    if isinstance(value, bool):
        return pb.ParameterValue(flag=value)
    if isinstance(value, int):
        return pb.ParameterValue(integer=value)
    return pb.ParameterValue(number=float(value))


def snapshot_row(snapshot: pb.WatchtowerSnapshot) -> dict[str, Any]:
    """One DataFrame row: ``tick``, ``time`` (UTC), every indicator as
    ``<group>.<field>`` and every parameter as ``param.<key>``."""
    row: dict[str, Any] = {
        "tick": snapshot.tick,
        "time": pd.Timestamp(snapshot.captured_at_unix_ms, unit="ms", tz="UTC"),
    }
    for group in INDICATOR_GROUPS:
        message = getattr(snapshot, group)
        for field in message.DESCRIPTOR.fields:
            row[f"{group}.{field.name}"] = getattr(message, field.name)
    for key in sorted(snapshot.parameters):
        row[f"param.{key}"] = _value(snapshot.parameters[key])
    return row


def to_frame(snapshots: Iterable[pb.WatchtowerSnapshot]) -> pd.DataFrame:
    """A DataFrame with one row per snapshot, indexed by tick (see
    :func:`snapshot_row` for the columns)."""
    frame = pd.DataFrame([snapshot_row(s) for s in snapshots])
    if frame.empty:
        return frame
    return frame.set_index("tick").sort_index()


def _result(reply: pb.GodResponse) -> CommandResult:
    return CommandResult(
        command_id=reply.command_id,
        key=reply.key,
        old=_value(reply.old_value),
        new=_value(reply.new_value),
        applied_tick=reply.applied_tick,
        reason=reply.reason,
    )


def read_run(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The telemetry table a server recorded for one run, indexed by tick.

    ``run_dir`` is the run's directory under the server's ``--data-dir``
    (``watchtower-data/<run id>``). The table is read from its finished
    Parquet chunks (``telemetry/ticks-FIRST-LAST.parquet``), so this works on
    a run that is still going (up to its last finished chunk of 256 rows) or
    was killed. The columns are those of :meth:`Watchtower.frame`: ``time``
    (UTC), ``<group>.<field>`` per indicator and ``param.<key>`` per
    parameter; with ``--record-every N`` there is a row every N ticks.

    Raises:
        FileNotFoundError: ``run_dir`` has no finished chunk yet.
    """
    table = pathlib.Path(run_dir) / "telemetry"
    chunks = sorted(table.glob("ticks-*.parquet"))
    if not chunks:
        raise FileNotFoundError(
            f"{table} has no telemetry chunk yet: the server writes one every 256 "
            "recorded ticks and at shutdown (and none with --data-dir off)"
        )
    frame = pd.concat([pd.read_parquet(chunk) for chunk in chunks], ignore_index=True)
    return frame.set_index("tick").sort_index()


class Watchtower:
    """A client of one Watchtower server.

    Example::

        with Watchtower("127.0.0.1:50051") as tower:
            tower.set("fiscal.income_tax_rate", 0.25, reason="budget")
            df = tower.record(seconds=5)

    Args:
        address: ``HOST:PORT`` of the gRPC port.
        token: sent as ``authorization: Bearer TOKEN`` with every call, for
            servers that require it.
        timeout: seconds each unary call may take.

    Every failed call raises a :class:`~watchtower_client.WatchtowerError`
    subclass carrying the server's details.
    """

    def __init__(self, address: str, token: str | None = None, *, timeout: float = 10.0):
        self._channel = grpc.insecure_channel(address)
        self._stub = pb_grpc.WatchtowerServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self) -> Watchtower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def parameters(self) -> list[Parameter]:
        """Every parameter with its type, range, unit, default and current
        value."""
        reply = self._call("ListParameters", pb.ListParametersRequest())
        return [
            Parameter(
                key=spec.key,
                description=spec.description,
                unit=spec.unit,
                type=pb.ValueType.Name(spec.value_type).removeprefix("VALUE_TYPE_").lower(),
                minimum=_value(spec.min),
                maximum=_value(spec.max),
                default=_value(spec.default_value),
                current=_value(spec.current_value),
                mutable=spec.mutable,
                step=spec.step,
            )
            for spec in reply.parameters
        ]

    def set(self, key: str, value: Value, reason: str = "") -> CommandResult:
        """Sets parameter ``key`` to ``value`` and returns once the engine
        has applied it.

        The value's Python type picks the wire type: ``bool`` for flags,
        ``int`` for integers, ``float`` for numbers.

        Raises:
            CommandRejected: unknown key, wrong type, out of range, or fixed;
                ``field`` and ``allowed`` say what is accepted.
            QueueFull: nothing was queued; retry after ``retry_after`` s.
        """
        command = pb.GodCommand(key=key, value=_to_wire(value), reason=reason)
        reply = self._call("ApplyCommand", pb.ApplyCommandRequest(command=command)).response
        return _result(reply)

    def apply(
        self,
        changes: Mapping[str, Value],
        reason: str = "",
        *,
        validate_only: bool = False,
    ) -> list[CommandResult]:
        """Sets several parameters in one Phase 0, all or nothing
        (``ApplyCommands``), in the mapping's order.

        Example::

            tower.apply({"fiscal.income_tax_rate": 0.18,
                         "fiscal.government_spending_ratio": 0.18},
                        reason="austerity package")

        Args:
            changes: parameter key to new value (typed as in :meth:`set`);
                1 to 100 of them.
            reason: recorded with every command of the batch.
            validate_only: check the whole batch against the current values
                and return the would-be results, changing nothing.

        Returns:
            One result per change, in order, all with the same applied tick.

        Raises:
            CommandRejected: one change was refused and none was applied;
                ``index`` is its position in ``changes``, ``field`` is
                ``commands[index].value`` (or ``.key``) and ``allowed`` what
                that parameter accepts.
            QueueFull: nothing was queued; retry after ``retry_after`` s.
        """
        commands = [
            pb.GodCommand(key=key, value=_to_wire(value), reason=reason)
            for key, value in changes.items()
        ]
        request = pb.ApplyCommandsRequest(commands=commands, validate_only=validate_only)
        reply = self._call("ApplyCommands", request)
        return [_result(response) for response in reply.responses]

    def stream(self, interval_ms: int = 100, history: int = 0) -> Iterator[pb.WatchtowerSnapshot]:
        """Telemetry snapshots, the newest at most every ``interval_ms``
        (10 to 60000), after up to ``history`` past ones. The stream ends
        when the server shuts down; stop early by closing the generator."""
        call = self._stub.SubscribeTelemetry(
            pb.SubscribeTelemetryRequest(interval_ms=interval_ms, history=history),
            metadata=self._metadata,
        )
        try:
            for message in call:
                yield message.snapshot
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(err) from None
        finally:
            call.cancel()

    def frame(self, history: int = 600) -> pd.DataFrame:
        """The last ``history`` snapshots the server keeps (at most its
        ``--history-cap``), one row per tick; see :func:`snapshot_row`."""
        latest = self._call("GetServerStats", pb.GetServerStatsRequest()).latest_tick
        rows = []
        # The past comes first and ends at the tick that was latest when the
        # subscription began, which is at least `latest`.
        for snapshot in self.stream(interval_ms=10, history=history):
            rows.append(snapshot)
            if snapshot.tick >= latest:
                break
        return to_frame(rows[-history:] if history else rows[-1:])

    def record(self, seconds: float, interval_ms: int = 100) -> pd.DataFrame:
        """Records live telemetry for ``seconds``, one snapshot at most
        every ``interval_ms``; one row per snapshot received."""
        deadline = time.monotonic() + seconds
        rows = []
        for snapshot in self.stream(interval_ms=interval_ms):
            rows.append(snapshot)
            if time.monotonic() >= deadline:
                break
        return to_frame(rows)
