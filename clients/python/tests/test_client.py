"""The client against a real Watchtower server (see conftest.py)."""

import threading
import time
from concurrent import futures

import grpc
import pandas as pd
import pytest

from watchtower_client import CommandRejected, Watchtower, read_run
from watchtower_client._proto import watchtower_pb2 as pb
from watchtower_client._proto import watchtower_pb2_grpc as pb_grpc


def test_parameters_have_types_ranges_and_current_values(tower):
    params = {p.key: p for p in tower.parameters()}
    rate = params["fiscal.income_tax_rate"]
    assert (rate.type, rate.minimum, rate.maximum, rate.unit) == ("number", 0.0, 0.9, "ratio")
    assert rate.current is not None and rate.mutable
    households = params["agents.households"]
    assert households.type == "integer" and not households.mutable
    assert params["monetary.taylor_rule"].type == "flag"


def test_set_returns_the_engine_verdict_and_the_next_snapshot_shows_it(tower):
    before = {p.key: p.current for p in tower.parameters()}["welfare.unemployment_benefit_ratio"]
    result = tower.set("welfare.unemployment_benefit_ratio", 0.55, reason="pytest")
    assert (result.key, result.old, result.new, result.reason) == (
        "welfare.unemployment_benefit_ratio",
        before,
        0.55,
        "pytest",
    )
    assert result.applied_tick > 0 and result.command_id
    for snapshot in tower.stream(interval_ms=10):
        if snapshot.tick >= result.applied_tick:
            assert snapshot.parameters["welfare.unemployment_benefit_ratio"].number == 0.55
            break


def test_out_of_range_raises_with_the_field_and_the_allowed_range(tower):
    with pytest.raises(CommandRejected) as caught:
        tower.set("fiscal.vat_rate", 0.9)
    err = caught.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.field == "command.value"
    assert err.allowed == "number in [0, 0.5]"
    assert err.reason == "OUT_OF_RANGE"
    assert err.metadata["key"] == "fiscal.vat_rate"
    assert "0.9" in err.description


@pytest.mark.parametrize(
    ("key", "value", "code", "reason", "field"),
    [
        ("fiscal.no_such_rate", 0.1, grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_KEY", "command.key"),
        ("monetary.taylor_rule", 0.5, grpc.StatusCode.INVALID_ARGUMENT, "WRONG_TYPE", "command.value"),
        ("agents.households", 10, grpc.StatusCode.FAILED_PRECONDITION, "IMMUTABLE", "command.key"),
    ],
)
def test_each_rejection_names_its_reason_and_field(tower, key, value, code, reason, field):
    with pytest.raises(CommandRejected) as caught:
        tower.set(key, value)
    assert (caught.value.code, caught.value.reason, caught.value.field) == (code, reason, field)


def _current(tower, key):
    return {p.key: p.current for p in tower.parameters()}[key]


def _current_once_published(tower, key, value, within=5.0):
    """What ListParameters shows for `key`, waiting (up to `within` s) for `value`:
    an answer comes from Phase 0 of its tick, and that tick's snapshot, published
    at Phase 8, is the first to show it (docs/protocol.md)."""
    deadline = time.monotonic() + within
    while (current := _current(tower, key)) != value and time.monotonic() < deadline:
        time.sleep(0.01)
    return current


def test_apply_sets_a_batch_in_one_tick(tower):
    changes = {"fiscal.corporate_tax_rate": 0.27, "fiscal.government_spending_ratio": 0.23}
    results = tower.apply(changes, reason="pytest batch")
    assert [(r.key, r.new, r.reason) for r in results] == [
        ("fiscal.corporate_tax_rate", 0.27, "pytest batch"),
        ("fiscal.government_spending_ratio", 0.23, "pytest batch"),
    ]
    assert len({r.applied_tick for r in results}) == 1 and results[0].applied_tick > 0
    assert all(r.command_id for r in results)
    for key, value in changes.items():
        assert _current_once_published(tower, key, value) == value


def test_apply_validate_only_answers_and_changes_nothing(tower):
    before = _current(tower, "fiscal.vat_rate")
    (result,) = tower.apply({"fiscal.vat_rate": 0.17}, validate_only=True)
    assert (result.key, result.old, result.new) == ("fiscal.vat_rate", before, 0.17)
    assert _current(tower, "fiscal.vat_rate") == before


def test_a_refused_batch_names_the_command_field_and_range_and_applies_nothing(tower):
    before = _current(tower, "fiscal.corporate_tax_rate")
    with pytest.raises(CommandRejected) as caught:
        tower.apply({"fiscal.corporate_tax_rate": before / 2, "fiscal.vat_rate": 0.9})
    err = caught.value
    assert (err.index, err.field) == (1, "commands[1].value")
    assert err.allowed == "number in [0, 0.5]"
    assert err.reason == "OUT_OF_RANGE"
    assert _current(tower, "fiscal.corporate_tax_rate") == before


def test_a_single_command_error_has_no_batch_index(tower):
    with pytest.raises(CommandRejected) as caught:
        tower.set("fiscal.vat_rate", 0.9)
    assert caught.value.index is None


def test_read_run_says_when_there_is_no_table(tmp_path):
    with pytest.raises(FileNotFoundError, match="no telemetry chunk"):
        read_run(tmp_path)


def test_stream_yields_snapshots_with_rising_ticks(tower):
    ticks = []
    for snapshot in tower.stream(interval_ms=10):
        ticks.append(snapshot.tick)
        if len(ticks) == 3:
            break
    assert ticks == sorted(set(ticks)), ticks


def test_frame_has_one_row_per_past_tick_with_indicators_and_parameters(tower):
    df = tower.frame(history=20)
    assert isinstance(df, pd.DataFrame)
    assert 1 <= len(df) <= 20
    assert df.index.name == "tick" and df.index.is_monotonic_increasing and df.index.is_unique
    for column in ["time", "macro.nominal_gdp", "agents.households", "engine.measured_tps", "param.fiscal.vat_rate"]:
        assert column in df.columns, column
    assert str(df["time"].dt.tz) == "UTC"


def test_a_history_beyond_the_cap_is_an_error_naming_history(tower):
    with pytest.raises(CommandRejected) as caught:
        tower.frame(history=100_000)
    assert caught.value.field == "history"


def test_record_collects_live_snapshots_for_the_given_time(tower):
    df = tower.record(seconds=0.5, interval_ms=50)
    assert len(df) >= 2
    assert df.index.is_monotonic_increasing and df.index.is_unique
    assert (df["time"].diff().dropna() >= pd.Timedelta(0)).all()


class _Recorder(pb_grpc.WatchtowerServiceServicer):
    """A gRPC server that only records the metadata of ListParameters."""

    def __init__(self):
        self.metadata = None
        self.called = threading.Event()

    def ListParameters(self, request, context):
        self.metadata = dict(context.invocation_metadata())
        self.called.set()
        return pb.ListParametersResponse()


def test_a_token_is_sent_as_bearer_authorization_metadata():
    recorder = _Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    pb_grpc.add_WatchtowerServiceServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with Watchtower(f"127.0.0.1:{port}", token="s3cret") as tower:
            assert tower.parameters() == []
        assert recorder.called.is_set()
        assert recorder.metadata["authorization"] == "Bearer s3cret"
    finally:
        server.stop(None)
