#!/usr/bin/env python3
"""One full-page screenshot per page of the built book, taken by headless Chromium, for a person to look at.

    python scripts/screenshot_book.py                      # book/_build/html -> book/_build/screenshots/
    python scripts/screenshot_book.py --html DIR --out DIR --width 1280

Pages are those of ``book/_toc.yml``, in order (``intro.png``, ``notebooks/synthfaces.png``, ...). Uses
Debian's ``chromium`` (``apt-get install chromium``; ``--chromium PATH`` for another) through the DevTools
protocol (``websocket-client``, installed with Jupyter), so that a screenshot holds the whole page, not
only the first screen. Each page is loaded from the files (no server) and shot after MathJax has typeset.
``make check-book`` builds the book and runs this script.
"""
from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WAIT_JS = """
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await document.fonts.ready;
  await Promise.all(Array.from(document.images).filter(i => !i.complete)
                    .map(i => new Promise(r => { i.onload = i.onerror = r; })));
  return document.documentElement.scrollHeight;
})()
"""


class Chromium:
    """A headless Chromium driven over the DevTools protocol (one tab)."""

    def __init__(self, binary: str, width: int):
        import websocket  # websocket-client

        self.profile = tempfile.mkdtemp(prefix="faceedit-chromium-")
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--disable-extensions", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={width},900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        deadline = time.time() + 60
        while time.time() < deadline and port is None:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"{binary} exited with code {self.proc.returncode}")
            if "DevTools listening on ws://" in line:
                port = int(line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        if port is None:
            self.close()
            raise RuntimeError(f"{binary} did not open its DevTools port")
        tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30))
        page = next(t for t in tabs if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120,
                                              suppress_origin=True)
        self.next_id = 0
        self.width = width
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def wait_event(self, name: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if json.loads(self.ws.recv()).get("method") == name:
                return
        raise TimeoutError(name)

    def shoot(self, url: str, out: Path, max_height: int) -> int:
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=900, deviceScaleFactor=1,
                  mobile=False)
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")
        height = self.call("Runtime.evaluate", expression=WAIT_JS, awaitPromise=True,
                           returnByValue=True)["result"].get("value") or 900
        height = int(min(height, max_height))
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=height, deviceScaleFactor=1,
                  mobile=False)
        time.sleep(0.3)
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        return height

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def pages(book_dir: Path) -> list[str]:
    from faceedit_nb.book import _strip_ext, toc_files

    return [_strip_ext(e) for e in toc_files(book_dir)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", type=Path, default=ROOT / "book", help="the book's folder (its _toc.yml)")
    parser.add_argument("--html", type=Path, default=None, help="built HTML (default <book>/_build/html)")
    parser.add_argument("--out", type=Path, default=None, help="default <book>/_build/screenshots")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--max-height", type=int, default=30000, help="cut longer pages (pixels)")
    parser.add_argument("--chromium", default=None, help="browser binary (default: chromium on PATH)")
    args = parser.parse_args(argv)
    html = args.html or args.book / "_build" / "html"
    out = args.out or args.book / "_build" / "screenshots"
    binary = args.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        print("error: no chromium on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    todo = [(p, html / f"{p}.html") for p in pages(args.book)]
    missing = [str(f) for _, f in todo if not f.is_file()]
    if missing:
        print(f"error: build the book first; missing {', '.join(missing)}", file=sys.stderr)
        return 2
    browser = Chromium(binary, args.width)
    try:
        for page, file in todo:
            png = out / f"{page}.png"
            height = browser.shoot(file.resolve().as_uri(), png, args.max_height)
            print(f"{png}  ({args.width} x {height})")
    finally:
        browser.close()
    print(f"{len(todo)} screenshot(s) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
