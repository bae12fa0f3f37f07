"""A small Streamlit watchtower on Watchtower's legacy JSON WebSocket path.

    streamlit run examples/streamlit/app.py -- --url ws://127.0.0.1:8765

Sliders send `{"command": …}` frames; the charts follow `{"snapshot": …}`
frames. The socket lives in ws_client.py, so it can be tested without a UI.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ws_client import DEFAULT_URL, SLIDERS, WatchtowerSocket  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=DEFAULT_URL)
    args, _ = parser.parse_known_args()
    return args


@st.cache_resource
def connect(url):
    """One connection per server, shared by every rerun of the script."""
    return WatchtowerSocket(url)


def on_slide(socket, key):
    command_id = socket.send_command(key, float(st.session_state[f"slider:{key}"]))
    st.session_state["last_command"] = command_id


st.set_page_config(page_title="Watchtower", layout="wide")
st.title("Watchtower")
url = st.sidebar.text_input("WebSocket URL", parse_args().url)
try:
    socket = connect(url)
except OSError as err:
    st.error(f"Cannot connect to {url}: {err}. Is `watchtower` running?")
    st.stop()
if socket.closed is not None:
    connect.clear()
    st.error(f"Connection lost: {socket.closed}. Reload to reconnect.")
    st.stop()

try:
    socket.wait_for(lambda s: s.latest is not None, timeout=5)
except (TimeoutError, ConnectionError) as err:
    st.error(f"No telemetry from {url}: {err}")
    st.stop()

st.sidebar.header("Policy")
for key, (low, high, step) in SLIDERS.items():
    current = socket.parameter(key)
    if current is None:
        continue
    st.sidebar.slider(
        key,
        min_value=low,
        max_value=high,
        value=min(max(current, low), high),
        step=step,
        key=f"slider:{key}",
        on_change=on_slide,
        args=(socket, key),
    )

last = st.session_state.get("last_command")
if last:
    response = next((r for r in socket.responses if r.get("commandId") == last), None)
    if response is None:
        st.sidebar.info("Command sent; waiting for the next tick.")
    elif response.get("success"):
        old = response.get("oldValue", {}).get("number")
        new = response.get("newValue", {}).get("number")
        st.sidebar.success(f"{response['key']}: {old} → {new} at tick {response['appliedTick']}")
    else:
        st.sidebar.error(response.get("error", "rejected"))
if socket.errors:
    error = socket.errors[-1]
    st.sidebar.warning(f"{error.get('code')}: {error.get('message')}")


@st.fragment(run_every=1.0)
def charts():
    history = pd.DataFrame(list(socket.history))
    if history.empty:
        st.info("Waiting for snapshots…")
        return
    history = history.set_index("tick")
    latest = history.iloc[-1]
    cols = st.columns(4)
    cols[0].metric("Tick", int(history.index[-1]))
    cols[1].metric("Nominal GDP", f"{latest['gdp']:.1f}")
    cols[2].metric("Unemployment", f"{latest['unemployment']:.1%}")
    cols[3].metric("Inflation", f"{latest['inflation']:+.2%}")
    st.subheader("Nominal GDP")
    st.line_chart(history["gdp"])
    left, right = st.columns(2)
    left.subheader("Unemployment rate")
    left.line_chart(history["unemployment"])
    right.subheader("Inflation")
    right.line_chart(history["inflation"])
    st.subheader("Tick, by snapshot received")
    st.line_chart(history.reset_index()["tick"])


charts()
