"""Samples from a saved generation's models (``scl samples OUT_DIR --generation g``).

One panel per configuration (every static variant x knob-grid point, one seed): a scatter over the
first two coordinates with truth samples behind (vectors) or a histogram (1-D). Image rows
({"x": [n, D], "y": [n]}, scl.data.images) are drawn as a tiled grid of up to 8 x 8 images
(greyscale or RGB from the truth's ``image_shape``), each labelled with its class, plus one panel
of held-out truth images. ``scl run`` writes such grids for generations 0, G // 2 and G of image
runs (:func:`write_run_grids`, ``samples_g0000.png``, ...).
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
    draw_truth = source.heldout if getattr(source, "heldout", None) is not None else source.sample
    truth = draw_truth(jax.random.fold_in(base, 10**6), n)
    labels = [", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in {**gm.static, **{k: v for k, v in gm.points[c].items() if k != "seed"}}.items())
              or "config" for c in picked]
    host = lambda t: jax.tree_util.tree_map(np.asarray, t)
    if isinstance(samples, dict):        # image rows: one dict per panel
        samples = [jax.tree_util.tree_map(lambda a: a[i], host(samples)) for i in range(len(picked))]
        return labels, samples, host(truth)
    return labels, np.asarray(samples), np.asarray(truth)


def is_image(rows) -> bool:
    return isinstance(rows, dict) and "x" in rows and "y" in rows


def tile(x, image_shape, cols: int = 8, fill: float = 1.0):
    """Images x [m, H*W*C] in [-1, 1] -> one mosaic [rows*(H+1)-1, cols*(W+1)-1, C] in [0, 1]
    (pixel (v + 1) / 2; 1 px gaps of value ``fill``)."""
    H, W, C = image_shape
    m = len(x)
    rows = max(1, int(np.ceil(m / cols)))
    out = np.full((rows * (H + 1) - 1, cols * (W + 1) - 1, C), fill, np.float32)
    imgs = np.clip((np.asarray(x, np.float32).reshape(m, H, W, C) + 1.0) / 2.0, 0.0, 1.0)
    for i in range(m):
        r, c = divmod(i, cols)
        out[r * (H + 1):r * (H + 1) + H, c * (W + 1):c * (W + 1) + W] = imgs[i]
    return out


def _image_panel(ax, rows, image_shape, class_names=None, cols: int = 8):
    x, y = np.asarray(rows["x"])[: cols * cols], np.asarray(rows["y"])[: cols * cols]
    H, W, C = image_shape
    mosaic = tile(x, image_shape, cols, fill=0.0 if C == 1 else 1.0)   # greyscale: drawn ink-dark (gray_r)
    ax.imshow(mosaic[..., 0] if C == 1 else mosaic, cmap="gray_r" if C == 1 else None, vmin=0.0, vmax=1.0,
              interpolation="nearest")
    for i, label in enumerate(y):
        r, c = divmod(i, cols)
        name = class_names[int(label)] if class_names else str(int(label))
        ax.text(c * (W + 1) + 0.5, r * (H + 1) + 0.5, name, color="C3", fontsize=5, ha="left", va="top")
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(panels, image_shape, title: str = "", class_names=None):
    """Figure with one image mosaic per (label, rows {"x", "y"}) panel (at most MAX_PANELS),
    four to a row."""
    from matplotlib.figure import Figure

    panels = panels[:MAX_PANELS]
    cols = min(4, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig = Figure(figsize=(3.2 * cols, 3.3 * rows + 0.4), dpi=120)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (label, x) in zip(axes.flat, panels):
        _image_panel(ax, x, image_shape, class_names)
        ax.set_title(label, fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _limits(panels, lo=0.5, hi=99.5):
    """Shared axis limits over every panel (percentiles, so one diverged model does not squash the
    rest): ((x0, x1), (y0, y1)) for 2-D rows, ((x0, x1), None) for 1-D."""
    rows = np.concatenate([np.asarray(a).reshape(np.asarray(a).shape[0], -1)
                           for _, x, truth in panels for a in (x, truth)])
    rows = rows[np.all(np.isfinite(rows), axis=1)] if rows.ndim == 2 else rows
    if rows.size == 0:
        return (-1.0, 1.0), None
    lim = [tuple(np.percentile(rows[:, k], [lo, hi])) for k in range(min(2, rows.shape[1]))]
    lim = [(a - 0.05 * (b - a + 1e-12), b + 0.05 * (b - a + 1e-12)) for a, b in lim]
    two_d = all(np.asarray(x).ndim == 2 and np.asarray(x).shape[1] >= 2 for _, x, _ in panels)
    return lim[0], (lim[1] if two_d and len(lim) > 1 else None)


def _panel(ax, x, truth, xlim):
    if x.ndim == 2 and x.shape[1] >= 2:
        ax.scatter(truth[:, 0], truth[:, 1], s=3, c="0.8", lw=0, label="truth")
        ax.scatter(x[:, 0], x[:, 1], s=3, c="C0", lw=0, label="model")
    else:
        x = x.reshape(x.shape[0], -1)[:, 0]
        bins = np.linspace(xlim[0], xlim[1], 41)
        ax.hist(np.asarray(truth).reshape(truth.shape[0], -1)[:, 0], bins=bins, color="0.8", density=True,
                label="truth")
        ax.hist(x, bins=bins, color="C0", alpha=0.7, density=True, label="model")


def sample_grid(panels, title: str = ""):
    """Figure with one panel per (label, samples [n, ...], truth [n, ...]) (at most MAX_PANELS),
    four to a row, every panel on the same shared axes (equal aspect for 2-D rows)."""
    from matplotlib.figure import Figure

    panels = panels[:MAX_PANELS]
    cols = min(4, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    xlim, ylim = _limits(panels)
    fig = Figure(figsize=(3.2 * cols, 3.2 * rows + 0.4), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    for ax, (label, x, truth) in zip(axes.flat, panels):
        _panel(ax, np.asarray(x), np.asarray(truth), xlim)
        ax.set_title(label, fontsize=8)
    axes.flat[0].set_xlim(*xlim)
    if ylim is not None:
        axes.flat[0].set_ylim(*ylim)
        for ax in axes.flat:
            ax.set_aspect("equal", adjustable="box")
    if axes.flat[0].get_legend_handles_labels()[1]:
        axes.flat[0].legend(fontsize=7, markerscale=3, loc="upper right")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_generation(out_dir, generation: int, n: int = 1000, seed: int = 0, path=None, format: str = "png") -> Path:
    """Draw ``n`` samples per configuration from generation ``generation``; save a figure (``path``,
    its format from the suffix, default ``OUT_DIR/samples_gen<g>.<format>``). Every panel shares
    the same axes (limits from the 0.5-99.5 % percentiles of all panels' rows)."""
    from scl.atomic import save_figure
    from scl.checkpoint import load_generation

    panels, name, images = [], "", None
    for gm in load_generation(out_dir, generation):
        labels, samples, truth = draw(gm, n, seed)
        panels += [(label, x, truth) for label, x in zip(labels, samples)]
        name = name or str(gm.config.name)
        if is_image(truth) and images is None:
            from scl.data import make_source

            images = make_source(gm.config.truth).params
    path = Path(path) if path else Path(out_dir) / f"samples_gen{generation}.{format}"
    if images is not None:
        grid = [("truth (held-out)", panels[0][2])] + [(label, x) for label, x, _ in panels]
        fig = image_grid(grid, images["image_shape"], f"{name + ': ' if name else ''}generation {generation}, "
                         f"seed {seed}: samples per model (first panel: held-out truth)", images.get("class_names"))
        save_figure(fig, path)
        return path
    fig = sample_grid(panels, f"{name + ': ' if name else ''}generation {generation}, seed {seed}: "
                              f"{n} samples per model (grey: truth)")
    save_figure(fig, path)
    return path


def run_grid_generations(generations: int) -> list[int]:
    """The generations ``scl run`` draws sample grids of: 0, the middle and the last."""
    return sorted({0, generations // 2, generations})


def write_run_grids(out_dir, cfg, n: int = 64, format: str = "png") -> list[Path]:
    """After ``scl run`` of an image truth, before its checkpoints are pruned: sample grids of
    generations 0, G // 2 and G (those whose model states the checkpoints kept, see
    ``checkpoint.stride``) as ``OUT_DIR/samples_g0000.<format>``, ... Other truths: none."""
    from scl.errors import ConfigError

    if getattr(cfg.truth, "rows", "vector") != "image" or not cfg.checkpoint.enabled or cfg.checkpoint.stride == 0:
        return []
    paths = []
    for g in run_grid_generations(cfg.loop.generations):
        try:
            paths.append(plot_generation(out_dir, g, n=n, path=Path(out_dir) / f"samples_g{g:04d}.{format}"))
        except ConfigError:        # this generation's models were not kept (checkpoint.stride)
            continue
    return paths
