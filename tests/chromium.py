"""A small headless-Chromium driver for the browser check (Chrome DevTools Protocol over a pipe).

``--dump-dom`` and ``--screenshot`` cannot emulate a phone (headless Chromium clamps the window
to at least 500 px) and cannot wait for MathJax. This driver talks to Chromium over
``--remote-debugging-pipe`` (file descriptors 3 and 4, NUL-separated JSON messages; no port, no
extra package): it sets the viewport (``Emulation.setDeviceMetricsOverride``), loads a page,
waits until MathJax has typeset, evaluates JavaScript and takes screenshots of any part of the
page. Every outside host is unresolvable, so anything a page needed from the network fails.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    # No outside host resolves: anything the page needed from the network would fail to load.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
]

# Resolves once the page has loaded, MathJax (if any) has typeset, and fonts and images are ready.
READY_JS = """
new Promise(function (resolve) {
  function settle() {
    var waits = [document.fonts ? document.fonts.ready : Promise.resolve()];
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) waits.push(MathJax.startup.promise);
    document.querySelectorAll('img').forEach(function (img) {
      if (!img.complete) waits.push(new Promise(function (r) { img.onload = img.onerror = r; }));
    });
    Promise.all(waits).then(function () { setTimeout(function () { resolve(true); }, 50); });
  }
  if (document.readyState === 'complete') settle(); else window.addEventListener('load', settle);
})
"""


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    pass


class Chromium:
    """One headless Chromium with one page (tab), driven over the DevTools pipe.

    >>> with Chromium(profile_dir) as browser:                    # doctest: +SKIP
    ...     browser.open(url, width=390, height=844, mobile=True)
    ...     data = browser.evaluate("document.title")
    ...     browser.screenshot_slices(out_dir / "page-390", max_slices=40)
    """

    def __init__(self, profile: Path, executable: str | None = None, timeout: float = 120.0) -> None:
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise FileNotFoundError("no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) + ")")
        self.profile = Path(profile)
        self.timeout = timeout
        self._id = 0
        self._buffer = b""
        self.console: list[str] = []
        self.failed_requests: list[str] = []
        self._urls: dict[str, str] = {}
        self._events: list[dict] = []

    # -- process and pipe ------------------------------------------------------------------------
    def __enter__(self) -> "Chromium":
        # The child's ends are moved above fd 10 first, so that putting them on 3 and 4 cannot
        # clobber one with the other.
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_chrome_r, from_chrome_w)]
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        to_chrome_r, from_chrome_w = high
        # Chromium reads commands on fd 3 and writes replies on fd 4: a shell puts the pipe ends
        # there and then becomes Chromium.
        launch = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-'
        self.process = subprocess.Popen(
            ["bash", "-c", launch, self.executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            pass_fds=(to_chrome_r, from_chrome_w),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._write, self._read = to_chrome_w, from_chrome_r
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable")
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._call("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._write, self._read):
            try:
                os.close(fd)
            except OSError:
                pass

    def _send(self, message: dict) -> None:
        os.write(self._write, json.dumps(message).encode() + b"\0")

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._read], [], [], left)
            if ready:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    err = self.process.stderr.read().decode(errors="replace")[-2000:] if self.process.stderr else ""
                    raise CDPError(f"Chromium closed the DevTools pipe: {err}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _handle_event(self, message: dict) -> None:
        method = message.get("method", "")
        params = message.get("params", {})
        if method == "Runtime.exceptionThrown":
            detail = params.get("exceptionDetails", {})
            self.console.append("exception: " + str(detail.get("exception", {}).get("description") or detail.get("text")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.console.append("log: " + params["entry"].get("text", ""))
        elif method == "Network.loadingFailed":
            self.failed_requests.append(params.get("errorText", "") + " " + self._urls.get(params.get("requestId"), ""))
        elif method == "Network.requestWillBeSent":
            self._urls[params.get("requestId")] = params.get("request", {}).get("url", "")[:200]
        if method:
            self._events.append(message)

    def _call(self, method: str, params: dict | None = None, session: str | None = None,
              timeout: float | None = None) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._handle_event(reply)

    def call(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        """A DevTools command on the page's session."""
        return self._call(method, params, self.session, timeout)

    # -- pages -----------------------------------------------------------------------------------
    def open(self, url: str, *, width: int, height: int, mobile: bool = False) -> None:
        """Load ``url`` in a ``width`` x ``height`` viewport and wait until it is typeset."""
        self._events = []
        self._urls = {}
        self.console, self.failed_requests = [], []
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
        self.call("Page.navigate", {"url": url})
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            self._handle_event(self._receive(deadline))
        self.evaluate(READY_JS)

    def evaluate(self, expression: str):
        """Evaluate JavaScript in the page (awaiting a promise) and return its JSON value."""
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True})
        if "exceptionDetails" in result:
            detail = result["exceptionDetails"]
            raise CDPError("JavaScript error: " + str(detail.get("exception", {}).get("description") or detail))
        return result.get("result", {}).get("value")

    def screenshot_slices(self, stem: Path, max_slices: int = 60) -> list[Path]:
        """The whole page as viewport-high PNG slices ``stem-01.png``, ``stem-02.png``, ...
        (at most ``max_slices``; the last slice is cut at the page's end).

        Each slice is what a reader sees after scrolling there: the window is scrolled to the
        slice and the viewport captured. (Capturing beyond the viewport instead, in one long
        render, showed some deep slices of long pages shifted sideways, which no reader sees.)"""
        size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight,"
                             " window.innerWidth, window.innerHeight]")
        page_w, page_h, view_w, view_h = size
        paths = []
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        for old in stem.parent.glob(stem.name + "-*.png"):
            old.unlink()
        for i in range(min(max_slices, -(-page_h // view_h))):
            top = i * view_h
            # scroll there and wait for two frames (near the end the window stops at page_h - view_h,
            # and the clip, in page coordinates, is still inside the viewport)
            self.evaluate(f"new Promise(done => {{ window.scrollTo(0, {top}); "
                          "requestAnimationFrame(() => requestAnimationFrame(() => done(window.scrollY))); })")
            clip = {"x": 0, "y": top, "width": view_w, "height": min(view_h, page_h - top), "scale": 1}
            data = self.call("Page.captureScreenshot", {"format": "png", "clip": clip})["data"]
            path = stem.parent / f"{stem.name}-{i + 1:02d}.png"
            path.write_bytes(base64.b64decode(data))
            paths.append(path)
        self.evaluate("window.scrollTo(0, 0)")
        return paths
