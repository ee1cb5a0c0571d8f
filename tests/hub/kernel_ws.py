"""A kernel behind a Jupyter server, driven as JupyterLab drives it: REST to start it, the
server's websocket (the JSON protocol, one message per text frame) to execute code."""
import json
import time
import uuid
from collections import namedtuple

import websocket

Result = namedtuple("Result", "stdout ename evalue data")


class Kernel:
    """One kernel of a single-user server at base ("http://host:port/user/NAME"), started with
    its user's token; execute() returns a Result."""

    def __init__(self, session, base, token, name):
        self.http, self.base, self.token = session, base, token
        r = self.http.post(f"{base}/api/kernels", json={"name": name}, headers=self._auth(), timeout=60)
        assert r.status_code == 201, f"starting kernel {name} at {base}: {r.status_code} {r.text[:500]}"
        self.id = r.json()["id"]
        self.session = uuid.uuid4().hex
        ws_base = base.replace("http://", "ws://", 1)
        self.ws = websocket.create_connection(
            f"{ws_base}/api/kernels/{self.id}/channels?session_id={self.session}",
            header=[f"Authorization: token {token}"], timeout=90)

    def _auth(self):
        return {"Authorization": f"token {self.token}"}

    def execute(self, code, timeout=90):
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "ck-hub-test",
                       "session": self.session, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out, data, ename, evalue, replied, idle = [], {}, None, None, False, False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                raise AssertionError(f"no reply in {timeout} s to {code[:80]!r}; output so far: {out}")
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] in ("dead", "restarting"):
                return Result("".join(out), "kernel died", content["execution_state"], data)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("display_data", "execute_result"):
                data.update(content["data"])
            elif kind == "error":
                ename, evalue = content["ename"], content["evalue"]
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        return Result("".join(out), ename, evalue, data)

    def json(self, code):
        """Run code whose last line prints one JSON document; return it."""
        r = self.execute(code)
        assert r.ename is None, f"{code[:80]!r}: {r.ename}: {r.evalue}"
        return json.loads(r.stdout.strip().splitlines()[-1])

    def shutdown(self):
        try:
            self.ws.close()
        finally:
            r = self.http.delete(f"{self.base}/api/kernels/{self.id}", headers=self._auth(), timeout=60)
            assert r.status_code == 204, f"shutting down kernel {self.id}: {r.status_code} {r.text[:300]}"
