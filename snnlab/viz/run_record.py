"""How a chapter was computed: the note at the end of every page.

Run times, load averages and library versions matter to a reader who wants to reproduce a
number or judge a timing, but they are not findings, and printed between the results they are
noise. A chapter creates one :class:`RunRecord` at the top, marks its expensive steps, and
displays it at the end, where it renders as a collapsed "How this page was computed" note:

>>> record = RunRecord()               # first cell: the clock starts       # doctest: +SKIP
>>> record.mark("training runs")       # after an expensive step           # doctest: +SKIP
>>> record                             # last cell: the note               # doctest: +SKIP
"""

from __future__ import annotations

import html
import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata

from snnlab.runmode import QUICK_ENV, quick_mode

__all__ = ["RunRecord"]

VERSIONED = ("snnlab", "torch", "numpy", "numba", "scikit-learn", "matplotlib", "tonic")


@dataclass(frozen=True)
class _Clock:
    wall: float
    cpu: float
    load: float | None


def _now() -> _Clock:
    times = os.times()  # user + system time of this process and of its finished children
    cpu = times.user + times.system + times.children_user + times.children_system
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        load = None
    return _Clock(time.perf_counter(), cpu, load)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


class RunRecord:
    """Wall-clock and CPU time of a chapter's run (and of the steps marked in it), the machine's
    load, the run mode and the library versions, displayed as a collapsed note."""

    def __init__(self) -> None:
        self.start = _now()
        self._last = self.start
        self.marks: list[tuple[str, float, float]] = []
        self.quick = quick_mode()

    def mark(self, step: str) -> float:
        """Record the time since the previous mark (or the start) as ``step``; return it (s)."""
        now = _now()
        wall, cpu = now.wall - self._last.wall, now.cpu - self._last.cpu
        self.marks.append((str(step), wall, cpu))
        self._last = now
        return wall

    def summary(self) -> dict:
        """Everything the note shows, as plain values."""
        end = _now()
        try:
            import torch

            threads = torch.get_num_threads()
        except ImportError:  # pragma: no cover - torch is a dependency
            threads = None
        return {
            "mode": "quick" if self.quick else "full",
            "wall_s": end.wall - self.start.wall,
            "cpu_s": end.cpu - self.start.cpu,
            "load_start": self.start.load,
            "load_end": end.load,
            "cores": os.cpu_count(),
            "torch_threads": threads,
            "marks": list(self.marks),
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "versions": {name: _version(name) for name in VERSIONED},
        }

    def _rows(self) -> list[tuple[str, str]]:
        s = self.summary()
        load = ("not available" if s["load_start"] is None else
                f"{s['load_start']:.2f} at the start, {s['load_end']:.2f} at the end (1-minute average, "
                f"{s['cores']} cores)")
        mode = (f"{s['mode']} ({QUICK_ENV}={'1' if self.quick else '0'}: "
                + ("the small, fast version the tests run" if self.quick else "the book's full experiments") + ")")
        rows = [
            ("run mode", mode),
            ("wall-clock time", _duration(s["wall_s"])),
            ("CPU time (this kernel and its child processes)", _duration(s["cpu_s"])),
            ("load average", load),
            ("torch threads at the end", str(s["torch_threads"])),
        ]
        rows += [(f"step: {name}", f"{_duration(wall)} wall-clock, {_duration(cpu)} CPU") for name, wall, cpu in s["marks"]]
        rows.append(("Python", f"{s['python']} on {s['platform']}"))
        rows.append(("libraries", ", ".join(f"{k} {v}" for k, v in s["versions"].items())))
        return rows

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in self._rows())
        return ('<details class="snnlab-run-record"><summary>How this page was computed</summary>'
                '<p>Every number on this page was computed when it was built, by the code above, on this '
                'machine. Times are wall-clock unless marked CPU; on a shared machine the load average says how '
                'much else was running.</p>'
                f'<table class="snnlab-table">{body}</table></details>')

    def __str__(self) -> str:
        return "How this page was computed\n" + "\n".join(f"  {k}: {v}" for k, v in self._rows())

    __repr__ = __str__
