"""Headless Chromium driven over the DevTools protocol on a pipe (no websocket, no driver).

Chromium started with ``--remote-debugging-pipe`` reads protocol commands from its fd 3 and
writes replies and events to its fd 4, each message a JSON text ended by a NUL byte. That is
all a page test needs: open a file, record console errors, exceptions, dialogs and every
request the page makes, evaluate a script, and take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The flags this project's CI uses: no GPU, no sandbox (CI runs as root), and nothing that
# makes Chromium talk to the network on its own.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def find_chromium() -> str | None:
    """Path of Debian's ``chromium`` (or another Chromium/Chrome on PATH), or ``None``."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageReport:
    """What happened while a page loaded.

    Attributes:
        requests: URL of every request the page made (the page's own file included).
        console_errors: Console messages of type error or assert, and error log entries.
        exceptions: Uncaught exceptions' descriptions.
        dialogs: Messages of alert/confirm/prompt dialogs that opened.
        images: For each ``<img>``: its ``alt``, whether it decoded, natural width and height.
        value: What the extra script passed to :meth:`Chromium.open` returned.
        screenshot: The full-page screenshot's path, if one was asked for.
    """

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    value: Any = None
    screenshot: Path | None = None

    def outside_requests(self) -> list[str]:
        """Requests that would leave the page: anything but ``file:`` and ``data:`` URLs."""
        return [u for u in self.requests if not u.startswith(("file:", "data:"))]


class ChromiumError(RuntimeError):
    pass


class Chromium:
    """One headless Chromium with a fresh profile; use as a context manager."""

    def __init__(self, executable: str, *, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="geomrobust-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()

        def child_fds() -> None:  # runs in the child before exec: commands on 3, replies on 4
            a, b = os.dup(cmd_r), os.dup(out_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._proc = subprocess.Popen(
            [
                executable,
                *FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={self._profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=child_fds,
            pass_fds=(3, 4),
        )
        os.close(cmd_r)
        os.close(out_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._send("Browser.close", wait=False)
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired, ChromiumError):
                self._proc.kill()
                self._proc.wait()
        for fd in (self._cmd_w, self._out_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- protocol -----------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChromiumError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._out_r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._out_r, 1 << 20)
            if not chunk:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise ChromiumError(f"Chromium closed its pipe; stderr:\n{err[-2000:]}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        if not wait:
            return {}
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def _wait_event(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        for i, event in enumerate(self._events):
            if event["method"] == method and event.get("sessionId") == session:
                return self._events.pop(i)
        while True:
            event = self._read_message(deadline)
            if event.get("method") == "Page.javascriptDialogOpening":
                # A dialog blocks the page until answered; answer it and keep the record.
                self._send(
                    "Page.handleJavaScriptDialog",
                    {"accept": True},
                    session=event.get("sessionId"),
                    wait=False,
                )
            if event.get("method") == method and event.get("sessionId") == session:
                return event
            if "method" in event:
                self._events.append(event)

    # -- the one thing the tests need ---------------------------------------------------
    def open(
        self,
        path: Path,
        *,
        script: str | None = None,
        screenshot: Path | None = None,
        width: int = 1280,
        height: int = 900,
    ) -> PageReport:
        """Load ``path`` in a new tab and report what happened (see :class:`PageReport`)."""
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self._send(f"{domain}.enable", session=session)
        self._send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        self._events = [e for e in self._events if e.get("sessionId") != session]
        self._send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        self._wait_event("Page.loadEventFired", session)
        report = PageReport()
        report.images = self._evaluate(
            "Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete && "
            "i.naturalWidth > 0, width: i.naturalWidth, height: i.naturalHeight}))",
            session,
        )
        if script is not None:
            report.value = self._evaluate(script, session)
        if screenshot is not None:
            shot = self._send(
                "Page.captureScreenshot",
                {"format": "png", "captureBeyondViewport": True},
                session=session,
            )
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            report.screenshot = screenshot
        # Let late events (console messages, requests of lazily decoded content) arrive.
        self._evaluate("new Promise(r => setTimeout(r, 200)).then(() => 0)", session)
        for event in self._events:
            if event.get("sessionId") != session:
                continue
            method, params = event["method"], event["params"]
            if method == "Network.requestWillBeSent":
                report.requests.append(params["request"]["url"])
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                text = " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
                report.console_errors.append(text)
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                report.console_errors.append(params["entry"]["text"])
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                report.exceptions.append(
                    details.get("exception", {}).get("description", details.get("text", ""))
                )
            elif method == "Page.javascriptDialogOpening":
                report.dialogs.append(params["message"])
        self._send("Target.closeTarget", {"targetId": target})
        return report

    def _evaluate(self, expression: str, session: str) -> Any:
        reply = self._send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=session,
        )
        if "exceptionDetails" in reply:
            raise ChromiumError(f"script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")
