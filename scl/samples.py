"""Samples from a saved generation's models (``scl samples OUT_DIR --generation g``).

One panel per configuration (every static variant x knob-grid point, one seed): a scatter over the
first two coordinates with truth samples behind (vectors) or a histogram (1-D).
"""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

MAX_PANELS = 48


def draw(gm, n: int, seed: int = 0):
    """Samples of ``gm`` (a :class:`scl.checkpoint.GenerationModels`) for seed ``seed``.

    Returns (labels [P], samples [P, n, ...], truth [n, ...]) over the P knob-grid points."""
    from scl.data import make_source
    from scl.families import make_family

    picked = [c for c, p in enumerate(gm.points) if p["seed"] == seed]
    if not picked:
        from scl.errors import ConfigError

        raise ConfigError("seed", f"must be in [0, {gm.config.seeds - 1}], got {seed}")
    source = make_source(gm.config.truth)
    family = make_family(gm.config.model, source)
    idx = np.asarray(picked)
    states = jax.tree_util.tree_map(lambda a: a[idx], gm.states)
    knobs = jax.tree_util.tree_map(lambda a: a[idx], gm.knobs)
    base = jax.random.fold_in(jax.random.PRNGKey(gm.config.seed), gm.generation)
    keys = jax.random.split(base, len(picked))
    samples = jax.vmap(lambda k, s, kn: family.sample(k, s, n, kn["model"]))(keys, states, knobs)
    truth = source.sample(jax.random.fold_in(base, 10**6), n)
    labels = [", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in {**gm.static, **{k: v for k, v in gm.points[c].items() if k != "seed"}}.items())
              or "config" for c in picked]
    return labels, np.asarray(samples), np.asarray(truth)


def _panel(ax, x, truth):
    if x.ndim == 2 and x.shape[1] >= 2:
        ax.scatter(truth[:, 0], truth[:, 1], s=3, c="0.8", lw=0, label="truth")
        ax.scatter(x[:, 0], x[:, 1], s=3, c="C0", lw=0, label="model")
        ax.set_aspect("equal", "datalim")
    else:
        x = x.reshape(x.shape[0], -1)[:, 0]
        ax.hist(np.asarray(truth).reshape(truth.shape[0], -1)[:, 0], bins=40, color="0.8", density=True)
        ax.hist(x, bins=40, color="C0", alpha=0.7, density=True)


def plot_generation(out_dir, generation: int, n: int = 1000, seed: int = 0, path=None) -> Path:
    """Draw ``n`` samples per configuration from generation ``generation``; save a PNG."""
    from matplotlib.figure import Figure

    from scl.atomic import save_figure
    from scl.checkpoint import load_generation

    panels = []
    for gm in load_generation(out_dir, generation):
        labels, samples, truth = draw(gm, n, seed)
        panels += [(label, x, truth) for label, x in zip(labels, samples)]
    panels = panels[:MAX_PANELS]
    cols = min(4, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig = Figure(figsize=(3.2 * cols, 3.2 * rows), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (label, x, truth) in zip(axes.flat, panels):
        _panel(ax, x, truth)
        ax.set_title(label, fontsize=8)
    if axes.flat[0].get_legend_handles_labels()[1]:
        axes.flat[0].legend(fontsize=7, markerscale=3, loc="upper right")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"generation {generation}, seed {seed}: {n} samples per model", fontsize=10)
    fig.tight_layout()
    path = Path(path) if path else Path(out_dir) / f"samples_gen{generation}.png"
    save_figure(fig, path)
    return path
