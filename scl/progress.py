"""Progress bar with an ETA (tqdm; notebook-friendly where a notebook front end is present).

Each static variant compiles its own program on its first chunk: the bar says ``compiling`` then,
and its ETA is computed from the chunks that ran after compilation only (generations per second of
run time, summed over variants), so a long compile does not inflate it. After each variant the
caller prints that variant's first metric per sweep point (:func:`variant_report`).
"""
from __future__ import annotations

import sys
import time

import numpy as np

MAX_POINTS = 24     # sweep points listed after a variant (the rest: see scl show)


def make_bar(total: int, desc: str, enabled: bool = True, initial: int = 0):
    """A :class:`Bar` over ``total`` generations (``initial`` already done, e.g. on resume), or a
    silent stand-in when disabled."""
    if not enabled:
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _Silent()
    inner = tqdm(total=total, initial=initial, desc=desc, unit="gen", dynamic_ncols=True, file=sys.stderr,
                 bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} gen [{elapsed}{postfix}]")
    return Bar(inner)


def format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Rate:
    """Generations per second of run time: chunks that included a compile are left out."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.gens = 0
        self.seconds = 0.0
        self._mark = None          # start of the current timed chunk (None: next chunk compiles)

    def compiling(self):
        self._mark = None

    def chunk_done(self, n: int):
        now = self.clock()
        if self._mark is not None:          # a chunk of an already compiled program
            self.gens += n
            self.seconds += now - self._mark
        self._mark = now

    def eta(self, remaining: int):
        """Seconds left, or None before any compiled chunk has been timed."""
        if self.gens == 0 or self.seconds <= 0:
            return None
        return remaining * self.seconds / self.gens


class Bar:
    """A tqdm bar whose postfix says ``compiling`` or ``ETA mm:ss`` (from run time only)."""

    def __init__(self, inner, clock=time.perf_counter):
        self.inner = inner
        self.rate = Rate(clock)

    def compiling(self):
        """The next chunk compiles a program (a variant's first chunk)."""
        self.rate.compiling()
        self.inner.set_postfix_str("compiling", refresh=True)

    def update(self, n=1):
        self.rate.chunk_done(n)
        eta = self.rate.eta(self.inner.total - (self.inner.n + n))
        self.inner.set_postfix_str("ETA ?" if eta is None else f"ETA {format_eta(eta)}", refresh=False)
        self.inner.update(n)

    def skip(self, n):
        """Move the bar without timing (a resume fell back to an older checkpoint)."""
        self.inner.update(n)

    def set_description(self, s):
        self.inner.set_description(s)

    def write(self, text: str):
        self.inner.write(text, file=sys.stderr)

    def close(self):
        self.inner.close()


class _Silent:
    rate = None

    def compiling(self):
        pass

    def update(self, n=1):
        pass

    def skip(self, n):
        pass

    def set_description(self, s):
        pass

    def write(self, text):
        pass

    def close(self):
        pass


def variant_report(metrics: dict, points: list, static: dict, generation: int) -> str:
    """``metrics`` {name: [G+1, C]} of one variant; ``points[c]`` configuration c's coordinates
    (knobs + seed). The first metric's median over seeds at ``generation``, one entry per sweep
    point (knob-grid point), e.g. ``regime=fresh: median w2 at generation 50: real_fraction=0: 1.9,
    real_fraction=0.5: 0.21``."""
    if not metrics:
        return ""
    name = next(iter(metrics))
    row = np.asarray(metrics[name])[generation]
    groups: dict = {}
    for c, p in enumerate(points):
        key = tuple((k, v) for k, v in p.items() if k != "seed")
        groups.setdefault(key, []).append(row[c])
    head = " ".join(f"{k}={_fmt(v)}" for k, v in static.items())
    parts = []
    for key, values in list(groups.items())[:MAX_POINTS]:
        values = np.asarray(values, np.float64)
        med = np.median(values[~np.isnan(values)]) if not np.isnan(values).all() else np.nan
        label = ", ".join(f"{k}={_fmt(v)}" for k, v in key)
        parts.append(f"{label}: {med:.4g}" if label else f"{med:.4g}")
    more = f", ... ({len(groups) - MAX_POINTS} more points: scl show)" if len(groups) > MAX_POINTS else ""
    return f"{head + ': ' if head else ''}median {name} at generation {generation}: " + ", ".join(parts) + more


def _fmt(v):
    return f"{v:g}" if isinstance(v, float) else str(v)
