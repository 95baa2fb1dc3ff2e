"""TensorBoard logging of a run (``scl run --tensorboard DIR``), written with tensorboardX
(``pip install "scl[logging]"``; TensorFlow is not needed).

One TensorBoard *run* (sub-folder of ``logdir``) per sweep point, named by its coordinates, e.g.
``regime=fresh,real_fraction=0.1`` (``all`` without sweeps), so TensorBoard overlays the points on
one chart per metric. Each metric is logged as scalar ``<metric>`` = its median over seeds, with
step = generation; ``per_seed=True`` adds ``<metric>/seed_<s>`` for every seed.

    scl.simulate(cfg, callbacks=[scl.tensorboard.TensorBoard("tb")])
    tensorboard --logdir tb
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def _fmt(v):
    return f"{v:g}" if isinstance(v, float) else str(v)


def point_label(static: dict, point: dict) -> str:
    """``regime=fresh,real_fraction=0.1`` (``all`` when nothing is swept); ``/`` is replaced."""
    items = list(static.items()) + [(k, v) for k, v in point.items() if k != "seed"]
    label = ",".join(f"{k}={_fmt(v)}" for k, v in items) or "all"
    return label.replace("/", "_").replace("\\", "_")


class TensorBoard:
    """A per-chunk callback (:mod:`scl.callbacks`) writing TensorBoard event files."""

    def __init__(self, logdir, per_seed: bool = False):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            from scl.errors import ConfigError

            raise ConfigError("tensorboard", "needs tensorboardX: pip install \"scl[logging]\" "
                              "(or pip install tensorboardX)") from e
        self._writer_cls = SummaryWriter
        self.logdir = Path(logdir)
        self.per_seed = per_seed
        self.writers: dict = {}

    def _writer(self, label):
        if label not in self.writers:
            self.writers[label] = self._writer_cls(str(self.logdir / label))
        return self.writers[label]

    def __call__(self, event):
        groups: dict = {}
        for c, p in enumerate(event.points):
            groups.setdefault(point_label(event.static, p), []).append((c, p.get("seed", 0)))
        t0 = event.generations[0]
        for label, members in groups.items():
            w = self._writer(label)
            idx = np.asarray([c for c, _ in members])
            for name, values in event.metrics.items():
                values = np.asarray(values, np.float64)[:, idx]           # [k, seeds]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN rows stay NaN
                    med = np.nanmedian(values, axis=1)
                for j in range(values.shape[0]):
                    w.add_scalar(name, float(med[j]), t0 + j)
                    if self.per_seed:
                        for (_, s), v in zip(members, values[j]):
                            w.add_scalar(f"{name}/seed_{s}", float(v), t0 + j)
        for w in self.writers.values():
            w.flush()

    def close(self):
        for w in self.writers.values():
            w.close()
        self.writers.clear()
