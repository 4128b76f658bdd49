"""Loads pages in headless Chromium over the DevTools protocol (--remote-debugging-pipe: JSON
messages separated by NUL bytes on file descriptors 3 and 4, standard library only) and reports,
per page, the console errors, uncaught exceptions, failed loads and the number of images that
loaded (complete with a nonzero natural width)."""
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time

COUNT_IMAGES = ("JSON.stringify({total: document.images.length, "
                "loaded: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length, "
                "title: document.title})")


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    def __init__(self, timeout=60):
        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("no chromium on PATH (scripts/setup.sh installs Debian's chromium)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="vizsweep_chromium_")
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()

        def child_fds():  # cmd_r -> 3, res_w -> 4, whatever numbers the pipes got
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.close(a)
            os.close(b)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--allow-file-access-from-files", f"--user-data-dir={self.profile}", "about:blank"],
            close_fds=False, preexec_fn=child_fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(res_w)
        self.next_id = 0
        self.buffer = b""
        self.events = []

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.cmd_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_message(self, deadline):
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.res_r, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium exited (code {self.proc.poll()})")
            self.buffer += chunk
        msg, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method, session, deadline):
        while True:
            for k, e in enumerate(self.events):
                if e.get("method") == method and e.get("sessionId") == session:
                    return self.events.pop(k)
            self.events.append(self._read_message(deadline))

    def check(self, path):
        """{'errors': [...], 'total': N, 'loaded': N, 'title': str} for one file."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable", session=session)
            self.events = [e for e in self.events if e.get("sessionId") != session]
            self.send("Page.navigate", {"url": "file://" + os.path.abspath(path)}, session=session)
            self.wait_event("Page.loadEventFired", session, time.monotonic() + self.timeout)
            r = self.send("Runtime.evaluate", {"expression": COUNT_IMAGES, "returnByValue": True}, session=session)
            counts = json.loads(r["result"]["value"])
            errors = []
            for e in self.events:
                if e.get("sessionId") != session:
                    continue
                p = e.get("params", {})
                if e["method"] == "Runtime.exceptionThrown":
                    errors.append("exception: " + p["exceptionDetails"].get("text", "?"))
                elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
                elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                    errors.append(f"log: {p['entry']['text']} ({p['entry'].get('url', '')})")
            self.events = [e for e in self.events if e.get("sessionId") != session]
            return {"errors": errors, **counts}
        finally:
            self.send("Target.closeTarget", {"targetId": target})

    def screenshot(self, path, png, width=1000, height=700):
        """Writes a PNG of the page as the browser renders it."""
        import base64
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            self.send("Page.enable", session=session)
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
            self.send("Page.navigate", {"url": "file://" + os.path.abspath(path)}, session=session)
            self.wait_event("Page.loadEventFired", session, time.monotonic() + self.timeout)
            data = self.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
            with open(png, "wb") as f:
                f.write(base64.b64decode(data))
        finally:
            self.send("Target.closeTarget", {"targetId": target})
            self.events = [e for e in self.events if e.get("sessionId") != session]


if __name__ == "__main__":
    # python3 tests/analysis/browser.py PAGE... : checks pages; --screenshot PAGE PNG : renders one
    import sys
    with Browser() as b:
        if sys.argv[1:2] == ["--screenshot"]:
            b.screenshot(sys.argv[2], sys.argv[3])
        else:
            for p in sys.argv[1:]:
                print(p, b.check(p))
