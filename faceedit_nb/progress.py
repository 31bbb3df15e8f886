"""Progress a person can read while models train in other processes.

Training loops call :func:`report` (the engine after each iteration, the oracles' loop after each step).
It does nothing unless ``FACEEDIT_PROGRESS_DIR`` is set; then it writes ``<dir>/<task>.json`` (step, total,
training seconds) at most every two seconds. :class:`Monitor`, in the process that started the workers,
reads those files and prints one line per running task at most every ``every`` seconds::

    [ 3:12] stargan-3f2a...: 2,400/10,000 (24%), 3.1 min elapsed, ~9.8 min left
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path

__all__ = ["ENV", "report", "Monitor", "format_seconds"]

ENV = "FACEEDIT_PROGRESS_DIR"
_last: dict[str, float] = {}


def _file(directory: Path, task: str) -> Path:
    return directory / (re.sub(r"[^A-Za-z0-9_.-]", "_", task) + ".json")


def report(task: str, step: int, total: int) -> None:
    """Record that ``task`` has done ``step`` of ``total`` (no-op without ``FACEEDIT_PROGRESS_DIR``)."""
    directory = os.environ.get(ENV)
    if not directory:
        return
    now = time.monotonic()
    if step < total and now - _last.get(task, -1e9) < 2.0:
        return
    _last[task] = now
    path = _file(Path(directory), task)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"task": task, "step": int(step), "total": int(total), "time": time.time()}))
        os.replace(tmp, path)
    except OSError:  # progress is a courtesy: never let it stop training
        pass


def format_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Monitor:
    """Print the progress of every task reporting into ``directory``, at most every ``every`` seconds, from a
    background thread, while the ``with`` block runs (the workers inherit ``FACEEDIT_PROGRESS_DIR``)."""

    def __init__(self, directory, every: float = 30.0, stream=None, label: str = "", heartbeat="") -> None:
        self.dir, self.every, self.stream, self.label = Path(directory), float(every), stream or sys.stdout, label
        # printed with the elapsed time when no task reports (e.g. a chapter running); a callable is asked each
        # time (the chapters running at that moment)
        self.heartbeat = heartbeat
        self._stop = threading.Event()
        self._first: dict[str, tuple[float, int]] = {}  # task -> (wall time, step) when first seen
        self._done: set[str] = set()

    def lines(self) -> list[str]:
        """One line per task that has not finished: step / total, wall time since first seen, time left."""
        out = []
        now = time.time()
        for path in sorted(self.dir.glob("*.json")):
            try:
                r = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            task, step, total = r["task"], r["step"], r["total"]
            t0, s0 = self._first.setdefault(task, (now, step))
            if step >= total:
                if task not in self._done:
                    self._done.add(task)
                    out.append(f"{task}: done, {total:,} steps in {format_seconds(now - t0)}")
                continue
            rate = (step - s0) / (now - t0) if now > t0 and step > s0 else 0.0
            left = f"~{format_seconds((total - step) / rate)} left" if rate > 0 else "time left: measuring"
            out.append(f"{task}: {step:,}/{total:,} ({100 * step / max(1, total):.0f}%), "
                       f"{format_seconds(now - t0)} elapsed, {left}")
        return out

    def _loop(self) -> None:
        start = time.time()
        while not self._stop.wait(self.every):
            stamp = format_seconds(time.time() - start)
            beat = self.heartbeat() if callable(self.heartbeat) else self.heartbeat
            lines = self.lines() or ([f"{beat}: running"] if beat else [])
            for line in lines:
                print(f"[{stamp}] {self.label}{line}", file=self.stream, flush=True)

    def __enter__(self) -> "Monitor":
        self.dir.mkdir(parents=True, exist_ok=True)
        self._env = os.environ.get(ENV)
        os.environ[ENV] = str(self.dir)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for line in self.lines():  # the tasks that finished since the last print
            print(f"{self.label}{line}", file=self.stream, flush=True)
        if self._env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = self._env
