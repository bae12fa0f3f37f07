#!/usr/bin/env python3
"""The legacy JSON WebSocket client behind the Streamlit watchtower.

No Streamlit here: a background thread reads frames from Watchtower's legacy
WebSocket (ws://127.0.0.1:8765 by default) and keeps the latest snapshot, a
bounded chart history, command responses and errors; the UI thread reads
them and sends commands. `python3 ws_client.py --self-test --url ws://…`
checks it against a running server and exits non-zero on any surprise.
"""

import argparse
import collections
import itertools
import json
import os
import sys
import threading
import time

import websocket  # websocket-client

DEFAULT_URL = "ws://127.0.0.1:8765"

# How long a slider must rest before its value is sent: holding an arrow key
# sends one command for where it stops, not one per step.
DEBOUNCE_S = 0.4


def number_of(value):
    """The float in a ParameterValue JSON object, or None."""
    if not isinstance(value, dict):
        return None
    for kind in ("number", "integer"):
        if kind in value:
            return float(value[kind])
    return None


class WatchtowerSocket:
    """One WebSocket connection and what has arrived on it."""

    def __init__(self, url=DEFAULT_URL, history=600, timeout=5.0, token=None):
        """Connects to `url`; `token` (default: $WATCHTOWER_TOKEN) is sent as a bearer token."""
        self.url = url
        token = token if token is not None else os.environ.get("WATCHTOWER_TOKEN")
        header = [f"Authorization: Bearer {token}"] if token else []
        self._ws = websocket.create_connection(url, timeout=timeout, header=header)
        self._ws.settimeout(None)
        self._send_lock = threading.Lock()
        self._lock = threading.RLock()  # predicates read under it
        self._changed = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self.latest = None
        self.history = collections.deque(maxlen=history)
        self.responses = collections.deque(maxlen=50)
        self.errors = collections.deque(maxlen=50)
        self.parameters = None  # the catalogue, once `list_parameters` is answered
        self.control = None  # the last `control` answer
        self.last_sent = {}  # key -> id of the last command sent for it
        self._soon = {}  # key -> the timer that will send its resting value
        self.closed = None
        self._reader = threading.Thread(target=self._read, name="watchtower-ws", daemon=True)
        self._reader.start()

    def _read(self):
        try:
            while True:
                text = self._ws.recv()
                if not text:
                    break
                self._handle(json.loads(text))
        except (websocket.WebSocketException, OSError, ValueError) as err:
            reason = f"{type(err).__name__}: {err}"
        else:
            reason = "closed by the server"
        with self._changed:
            self.closed = reason
            self._changed.notify_all()

    def _handle(self, message):
        with self._changed:
            if "snapshot" in message:
                snapshot = message["snapshot"]
                macro = snapshot.get("macro", {})
                self.latest = snapshot
                self.history.append(
                    {
                        "tick": int(snapshot.get("tick", 0)),
                        "gdp": macro.get("nominalGdp", 0.0),
                        "unemployment": macro.get("unemploymentRate", 0.0),
                        "inflation": macro.get("inflation", 0.0),
                        "run": "paused"
                        if snapshot.get("engine", {}).get("runState") == "RUN_STATE_PAUSED"
                        else "running",
                    }
                )
            elif "response" in message:
                self.responses.append(message["response"])
            elif "error" in message:
                self.errors.append(message["error"])
            elif "parameters" in message:
                self.parameters = message["parameters"].get("parameters", [])
            elif "control" in message:
                self.control = message["control"]
            self._changed.notify_all()

    def send_text(self, text):
        with self._send_lock:
            self._ws.send(text)

    def send_command(self, key, value, reason="streamlit"):
        """Sends a number command; returns its id (the response comes later)."""
        command_id = f"st-{next(self._ids)}-{int(time.time() * 1000)}"
        frame = {"command": {"id": command_id, "key": key, "value": {"number": value}, "reason": reason}}
        self.send_text(json.dumps(frame))
        with self._changed:
            self.last_sent[key] = command_id
            self._changed.notify_all()
        return command_id

    def send_soon(self, key, value, delay=DEBOUNCE_S, reason="streamlit"):
        """Sends `value` for `key` once no newer value came for `delay` seconds."""
        with self._lock:
            if key in self._soon:
                self._soon[key].cancel()
            timer = threading.Timer(delay, self._send_resting, args=(key, value, reason))
            timer.daemon = True
            self._soon[key] = timer
            timer.start()

    def _send_resting(self, key, value, reason):
        with self._lock:
            self._soon.pop(key, None)
        try:
            self.send_command(key, value, reason)
        except (websocket.WebSocketException, OSError):
            pass  # the reader thread records the closed connection

    def pending(self, key):
        """True while a value for `key` waits for the slider to rest."""
        with self._lock:
            return key in self._soon

    def list_parameters(self, timeout=5.0):
        """The parameter catalogue (key, range, step, unit, current value), from the server."""
        self.send_text(json.dumps({"listParameters": {}}))
        return self.wait_for(lambda s: s.parameters, timeout)

    def send_control(self, action):
        """Sends a run-control action: {"pause": {}}, {"resume": {}}, {"step": {"ticks": n}}."""
        self.send_text(json.dumps({"control": action}))

    def subscribe(self, interval_ms):
        self.send_text(json.dumps({"subscribe": {"interval_ms": interval_ms}}))

    def parameter(self, key):
        with self._lock:
            if self.latest is None:
                return None
            return number_of(self.latest.get("parameters", {}).get(key))

    def wait_for(self, predicate, timeout=10.0):
        """Waits until predicate(self) is true; returns its value or raises."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = predicate(self)
                if result:
                    return result
                if self.closed is not None:
                    raise ConnectionError(f"connection closed: {self.closed}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out waiting for the server")
                self._changed.wait(left)

    def response_for(self, command_id, timeout=10.0):
        return self.wait_for(
            lambda s: next((r for r in s.responses if r.get("commandId") == command_id), None),
            timeout,
        )

    def close(self):
        with self._lock:
            for timer in self._soon.values():
                timer.cancel()
        try:
            self._ws.close()
        except (websocket.WebSocketException, OSError):
            pass


def self_test(url):
    """Exercises the helper against a live server; raises on any surprise."""
    ws = WatchtowerSocket(url)
    try:
        ws.wait_for(lambda s: len(s.history) >= 3)
        ticks = [h["tick"] for h in ws.history]
        assert ticks == sorted(ticks), f"ticks rise: {ticks}"
        print(f"snapshots ok: ticks {ticks[:3]}")

        key = "fiscal.vat_rate"
        before = ws.parameter(key)
        target = 0.12 if before != 0.12 else 0.13
        response = ws.response_for(ws.send_command(key, target, "self-test"))
        assert response.get("success") is True, response
        tick = int(response["appliedTick"])
        ws.wait_for(lambda s: s.latest and int(s.latest["tick"]) >= tick and s.parameter(key) == target)
        print(f"command ok: {key} {before} -> {target} at tick {tick}; snapshot shows it")

        response = ws.response_for(ws.send_command(key, 2.5, "self-test"))
        assert response.get("success") is not True, response
        assert response.get("field") == "command.value", response
        print(f"rejection ok: {response['error']}")

        errors = len(ws.errors)
        ws.send_text("{not json")
        error = ws.wait_for(lambda s: len(s.errors) > errors and s.errors[-1])
        assert error["code"] == "INVALID_JSON", error
        print(f"error ok: {error['code']}")

        ws.subscribe(50)
        start = len(ws.history)
        ws.wait_for(lambda s: len(s.history) >= start + 5)
        assert ws.parameter(key) == target, "nothing else changed the parameter"
        print("subscribe ok")
    finally:
        ws.close()


def main():
    parser = argparse.ArgumentParser(description="Watchtower legacy WebSocket helper")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--self-test", action="store_true", help="check the helper against a live server")
    args = parser.parse_args()
    if not args.self_test:
        parser.error("nothing to do; pass --self-test (the UI is `streamlit run app.py`)")
    try:
        self_test(args.url)
    except (AssertionError, ConnectionError, TimeoutError, OSError, websocket.WebSocketException) as err:
        print(f"self-test FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print("self-test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
