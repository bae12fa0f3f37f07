"""A small Streamlit watchtower on Watchtower's legacy JSON WebSocket path.

    streamlit run examples/streamlit/app.py --server.headless true -- --url ws://127.0.0.1:8765

The sliders are built from the server's parameter catalogue (`listParameters`)
and send `{"command": …}` frames once a slider rests; the sidebar shows each
command's receipt as it comes. Pause, Resume and Step send `{"control": …}`
frames. The charts follow `{"snapshot": …}` frames. A lost server shows a
warning and the page reconnects by itself. The socket lives in ws_client.py,
so it can be tested without a UI.
"""

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import websocket  # noqa: E402  websocket-client
from ws_client import DEFAULT_URL, WatchtowerSocket, number_of  # noqa: E402

# Seconds between reconnection attempts while the server does not answer.
RECONNECT_S = 1.0


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=DEFAULT_URL)
    args, _ = parser.parse_known_args()
    return args


@st.cache_resource
def connect(url):
    """One connection per server, shared by every rerun of the script."""
    return WatchtowerSocket(url)


def reconnecting(url, why):
    """Says the server is gone and tries again shortly, rather than freezing."""
    st.warning(f"Watchtower at {url} is not answering ({why}); reconnecting every second…")
    time.sleep(RECONNECT_S)
    st.rerun()


def decimals(step):
    """How many decimals show one step of a slider (0.0025 -> 4, 0.05 -> 2)."""
    text = f"{step:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def on_slide(socket, key):
    socket.send_soon(key, float(st.session_state[f"slider:{key}"]))
    st.session_state["last_key"] = key


def sliders(socket, catalogue):
    """One slider per mutable number parameter, with its range, step and unit."""
    for spec in catalogue:
        if not spec.get("mutable") or spec.get("valueType") != "VALUE_TYPE_NUMBER":
            continue
        key = spec["key"]
        low, high = number_of(spec.get("min")), number_of(spec.get("max"))
        step = spec.get("step") or (high - low) / 100
        current = socket.parameter(key)
        if current is None:
            current = number_of(spec.get("currentValue"))
        st.sidebar.slider(
            key,
            min_value=low,
            max_value=high,
            value=min(max(current, low), high),
            step=step,
            format=f"%.{decimals(step)}f",
            help=f"{spec.get('description', '')} ({spec.get('unit', '')})",
            key=f"slider:{key}",
            on_change=on_slide,
            args=(socket, key),
        )


def run_controls(socket):
    """Pause, Resume and Step one tick (two columns: three truncate the labels)."""
    pause, resume = st.sidebar.columns(2)
    pause.button("Pause", on_click=socket.send_control, args=({"pause": {}},), use_container_width=True)
    resume.button("Resume", on_click=socket.send_control, args=({"resume": {}},), use_container_width=True)
    st.sidebar.button(
        "Step one tick", on_click=socket.send_control, args=({"step": {"ticks": 1}},), use_container_width=True
    )


@st.fragment(run_every=0.3)
def receipt(socket):
    """The last slider's command: waiting, then the engine's receipt."""
    key = st.session_state.get("last_key")
    if not key:
        return
    if socket.pending(key):
        st.info(f"{key}: sending when the slider rests…")
        return
    command_id = socket.last_sent.get(key)
    response = next((r for r in reversed(socket.responses) if r.get("commandId") == command_id), None)
    error = next((e for e in reversed(socket.errors) if e.get("commandId") == command_id), None)
    if response is None and error is None:
        st.info(f"{key}: sent; waiting for the next tick.")
    elif response is not None and response.get("success"):
        old = number_of(response.get("oldValue"))
        new = number_of(response.get("newValue"))
        st.success(f"Applied: {key} {old} → {new} at tick {response.get('appliedTick', 0)}")
    else:
        reply = response or error
        st.error(f"{key}: {reply.get('error') or reply.get('message', 'rejected')}")


@st.fragment(run_every=1.0)
def charts(socket):
    if socket.closed is not None:
        st.rerun(scope="app")  # the script reconnects and says so
    history = pd.DataFrame(list(socket.history))
    if history.empty:
        st.info("Waiting for snapshots…")
        return
    history = history.set_index("tick")
    latest = history.iloc[-1]
    cols = st.columns(5)
    cols[0].metric("Tick", int(history.index[-1]))
    cols[1].metric("Run", latest["run"])
    cols[2].metric("Nominal GDP", f"{latest['gdp']:.1f}")
    cols[3].metric("Unemployment", f"{latest['unemployment']:.1%}")
    cols[4].metric("Inflation", f"{latest['inflation']:+.2%}")
    st.subheader("Nominal GDP")
    st.line_chart(history["gdp"])
    left, right = st.columns(2)
    left.subheader("Unemployment rate")
    left.line_chart(history["unemployment"])
    right.subheader("Inflation")
    right.line_chart(history["inflation"])


st.set_page_config(page_title="Watchtower", layout="wide")
st.title("Watchtower")
url = st.sidebar.text_input("WebSocket URL", parse_args().url)
try:
    socket = connect(url)
    if socket.closed is not None:
        connect.clear()
        socket = connect(url)
    socket.wait_for(lambda s: s.latest is not None, timeout=5)
    catalogue = socket.parameters or socket.list_parameters()
except (OSError, ConnectionError, TimeoutError, websocket.WebSocketException) as err:
    connect.clear()
    reconnecting(url, err)

st.sidebar.header("Run")
run_controls(socket)
st.sidebar.header("Policy")
sliders(socket, catalogue)
with st.sidebar:
    receipt(socket)
charts(socket)
