#!/usr/bin/env python3
"""Runs app.py headless with Streamlit's AppTest against a live server.

    python3 examples/streamlit/smoke_test.py --url ws://127.0.0.1:8765

Checks that the script runs without exceptions, builds a slider per mutable
number parameter of the server's catalogue, that moving a slider sends a command the
engine applies, and that the charts render. Also runs ws_client's self-test.
Exits non-zero on any failure.
"""

import argparse
import sys
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ws_client  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=ws_client.DEFAULT_URL)
    args = parser.parse_args()

    ws_client.self_test(args.url)

    sys.argv = ["app.py", "--url", args.url]
    at = AppTest.from_file(str(HERE / "app.py"), default_timeout=20)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    catalogue = ws_client.WatchtowerSocket(args.url).list_parameters()
    wanted = {p["key"] for p in catalogue if p.get("mutable") and p.get("valueType") == "VALUE_TYPE_NUMBER"}
    sliders = {s.label: s for s in at.sidebar.slider}
    assert set(sliders) == wanted, sorted(sliders)
    print(f"app ok: sliders {sorted(sliders)}")

    target = 0.2 if sliders["fiscal.vat_rate"].value != 0.2 else 0.21
    sliders["fiscal.vat_rate"].set_value(target).run()
    assert not at.exception, [e.value for e in at.exception]
    deadline = time.monotonic() + 10
    while not at.sidebar.success or "→" not in at.sidebar.success[0].value:
        assert time.monotonic() < deadline, "no success message for the slider's command"
        time.sleep(0.2)
        at.run()
    message = at.sidebar.success[0].value
    assert "fiscal.vat_rate" in message and str(target) in message, message
    print(f"slider ok: {message}")
    charts = at.get("vega_lite_chart")
    assert len(charts) == 3, f"GDP, unemployment and inflation charts; got {len(charts)}"
    metrics = {m.label: m.value for m in at.metric}
    assert "Tick" in metrics and int(metrics["Tick"]) > 0, metrics
    print(f"charts ok: metrics {metrics}")
    print("smoke test passed")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, ConnectionError, TimeoutError, OSError) as err:
        print(f"smoke test FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
