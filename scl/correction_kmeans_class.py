"""Per-class k-means correction of image rows (Gillman et al., ICML 2024, "Self-Correcting
Self-Consuming Loops", MNIST experiment): ``k`` centres are fitted on the generation-0 real rows
of EACH class; every synthetic image of label y moves toward its nearest centre among class y's.

Rows are image rows {"x": [n, D] in [-1, 1], "y": [n] int32} (scl.data.images); labels are
left unchanged. The state is ``{"centres": [K, k, D], "present": [K] bool}`` (K classes), fitted
once by ``init`` and carried by the loop (and its checkpoints).

Fixed shapes: each class's rows are gathered into n = ``loop.n`` slots by cycling through them,
each slot weighted 1 / (copies of its row), so the weighted k-means is exactly k-means of the
class's distinct rows (ott-jax's ``k_means``, k-means++ seeding, Lloyd). A class with fewer
than ``k`` real rows gets centres on its rows (some repeated); a class absent from the real rows
has ``present`` false and its synthetic rows are left as they are.

Rounded centres (``round_to: L``): each centre pixel is moved to the nearest of the L evenly
spaced levels of [-1, 1] that the dataset's raw pixels take, -1 + 2 j / (L - 1), j = 0..L-1
(digits: L = 17, raw values 0..16; MNIST: 256), so every centre is itself a valid image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import jax
import jax.numpy as jnp

from scl.errors import ConfigError
from scl.families.weighted import truth_rows
from scl.options import knob, static
from scl.registry import register_corrector
from scl.stages import Stage


@dataclass(frozen=True)
class KMeansPerClassCorrection:
    """``correction: {kind: kmeans_per_class, k, iterations, round_to, strength, share}``."""

    tag_key = "kind"
    name = "kmeans_per_class"
    k: int = static(16, "k-means centres per class, fitted on the generation-0 real rows of that class", ge=1)
    iterations: int = static(25, "Lloyd iterations after k-means++ seeding", ge=1)
    round_to: Optional[int] = static(None, "pixel levels the centres are rounded to (-1 + 2j/(L-1); "
                                           "digits 17, MNIST 256); null: no rounding", ge=2)
    strength: float = knob(1.0, "0 = no change, 1 = snap to the nearest same-class centre", ge=0.0, le=1.0)
    share: float = knob(1.0, "share of the synthetic rows corrected (each row w.p. share)", ge=0.0, le=1.0)

    def check(self, cfg):
        rows = truth_rows(cfg.truth)
        if rows != "image":
            raise ConfigError("correction.kind", f"'kmeans_per_class' corrects image rows; truth "
                              f"{cfg.truth.name!r} has {rows} rows (use kind: kmeans for vector rows)")
        if self.k > cfg.loop.n:
            raise ConfigError("correction.k", f"must be <= loop.n ({cfg.loop.n}) real rows, got {self.k}")


# ----------------------------------------------------------------------------- the maps

def round_to_levels(x, levels: int):
    """x in [-1, 1] -> nearest of ``levels`` evenly spaced values -1 + 2 j / (levels - 1)."""
    step = 2.0 / (levels - 1)
    return jnp.clip(jnp.round((x + 1.0) / step) * step - 1.0, -1.0, 1.0).astype(x.dtype)


def class_slots(y, c):
    """Indices [n] cycling through the rows of class c in y [n] and weights [n] (each distinct row's
    weights sum to 1); (idx, w, count). count = 0: idx and w are meaningless (w all 0)."""
    n = y.shape[0]
    mine = y == c
    count = jnp.sum(mine)
    order = jnp.argsort(~mine, stable=True)             # class-c rows first, in their order
    slot = jnp.arange(n) % jnp.maximum(count, 1)
    idx = order[slot]
    copies = n // jnp.maximum(count, 1) + (slot < n % jnp.maximum(count, 1))
    w = jnp.where(count > 0, 1.0 / copies, 0.0)
    return idx, w.astype(jnp.float32), count


def weighted_kmeans(key, x, w, k: int, iterations: int):
    """ott-jax k-means (k-means++ seeding, <= iterations Lloyd steps) of rows x [n, d] with
    weights w [n] -> centres [k, d]."""
    from ott.tools import k_means as ott_k_means

    out = ott_k_means.k_means(x, k, weights=w, init="k-means++", n_init=1, tol=0.0, min_iterations=0,
                              max_iterations=iterations, rng=key)
    return out.centroids.astype(x.dtype)


def fit_class_centres(key, rows, num_classes: int, k: int, iterations: int, round_to=None):
    """rows {"x": [n, D], "y": [n]} -> {"centres": [K, k, D], "present": [K] bool}."""
    x, y = rows["x"], rows["y"]

    def one(c, kc):
        idx, w, count = class_slots(y, c)
        centres = weighted_kmeans(kc, x[idx], w, k, iterations)
        return centres, count > 0

    centres, present = jax.vmap(one)(jnp.arange(num_classes), jax.random.split(key, num_classes))
    if round_to is not None:
        centres = round_to_levels(centres, round_to)
    return {"centres": centres, "present": present}


def nearest_same_class(x, y, centres):
    """Nearest centre of its own class for each row: x [n, D], y [n], centres [K, k, D] -> [n, D]."""
    mine = centres[y]                                            # [n, k, D]
    j = jnp.argmin(jnp.sum((x[:, None] - mine) ** 2, -1), -1)    # [n]
    return jnp.take_along_axis(mine, j[:, None, None], 1)[:, 0]


def correct_rows(key, state, rows, strength, share):
    """x <- x + strength (c(x) - x) for each row picked w.p. ``share`` whose class was present."""
    x, y = rows["x"], rows["y"]
    hit = jax.random.bernoulli(key, share, y.shape) & state["present"][y]
    move = jnp.where(hit[:, None], strength, 0.0).astype(x.dtype)
    return {**rows, "x": x + move * (nearest_same_class(x, y, state["centres"]) - x)}


# ----------------------------------------------------------------------------- registration

@register_corrector("kmeans_per_class", KMeansPerClassCorrection)
def make_kmeans_per_class(o: KMeansPerClassCorrection, ctx) -> Stage:
    """Move each synthetic image toward the nearest k-means centre of its class (centres fitted
    on the generation-0 real rows, kept in the stage state)."""
    num_classes = int(ctx.source.params["num_classes"])

    def init(key, real):
        return fit_class_centres(key, real, num_classes, o.k, o.iterations, o.round_to)

    def apply(key, state, rows, w, knobs):
        return state, correct_rows(key, state, rows, knobs["strength"], knobs["share"]), w
    return Stage(init, apply)
