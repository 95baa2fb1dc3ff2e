"""Finite image datasets as truths: a train split the loop draws real rows from, a disjoint
held-out split the metrics compare against, labels kept.

Rows of an image truth (``truth.rows == "image"``) are a dict pytree with leading axis n:

    {"x": [n, D] float32 pixels in [-1, 1], flattened from (H, W, C) in row-major order,
     "y": [n] int32 class labels in [0, num_classes)}

``Source.params`` carries ``image_shape`` (H, W, C), ``num_classes``, ``class_names`` and
``label_shares`` [num_classes] (the train split's class proportions). Both splits live on the
device as one array each; drawing is a gather inside the compiled loop: ``n`` distinct rows
(a random subset, without replacement) when the split holds at least ``n``, otherwise ``n``
rows with replacement. Independent calls draw independently (the loop's fresh real rows are
fresh draws from the finite train split, not a walk through it without repetition).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from scl.data.source import Source
from scl.errors import ConfigError
from scl.options import static

DIGITS_FILE = Path(__file__).with_name("digits.npz")   # scripts/make_digits.py
DIGITS_HELDOUT = 500                                    # held-out images of the 1,797 digits


class ImageArrays(NamedTuple):
    """Host copies of a dataset's two splits (float32 pixels in [-1, 1], flattened)."""

    train_x: np.ndarray       # [N, D]
    train_y: np.ndarray       # [N] int32
    heldout_x: np.ndarray     # [M, D]
    heldout_y: np.ndarray     # [M] int32
    image_shape: tuple        # (H, W, C), D = H * W * C
    class_names: tuple        # num_classes names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def to_unit_range(pixels: np.ndarray, maximum: float) -> np.ndarray:
    """[n, ...] pixel values in [0, maximum] -> float32 in [-1, 1], flattened to [n, D]."""
    x = np.asarray(pixels, np.float32).reshape(len(pixels), -1)
    return x * np.float32(2.0 / maximum) - np.float32(1.0)


def split(x: np.ndarray, y: np.ndarray, heldout: int, seed: int = 0):
    """A fixed random split: (train_x, train_y, heldout_x, heldout_y), the last ``heldout`` rows
    of a seeded permutation held out."""
    order = np.random.RandomState(seed).permutation(len(x))
    train, rest = order[:-heldout], order[-heldout:]
    return x[train], y[train].astype(np.int32), x[rest], y[rest].astype(np.int32)


def load_digits() -> ImageArrays:
    """The 8x8 digits shipped with scl (from scikit-learn): 1,297 train, 500 held-out images."""
    data = np.load(DIGITS_FILE)
    x = to_unit_range(data["images"], 16.0)
    return ImageArrays(*split(x, data["labels"], DIGITS_HELDOUT), (8, 8, 1),
                       tuple(str(k) for k in range(10)))


@dataclass(frozen=True)
class ImageSelection:
    """Options every image truth has (a base class of its options): which part of the dataset
    the loop sees. ``classes`` keeps those classes in both splits (labels keep their original
    numbers, so num_classes and a shipped feature network stay the dataset's); ``subsample``
    keeps the first k train rows (after ``classes``); the held-out split is never subsampled."""

    classes: Optional[tuple[int, ...]] = static(None, "keep only these class labels (null: all)", ge=0)
    subsample: Optional[int] = static(None, "use only the first k train rows (null: all)", ge=1)

    def validate(self, path):
        if self.classes is not None and (not self.classes or len(set(self.classes)) != len(self.classes)):
            raise ConfigError(f"{path}.classes", f"must list distinct labels, at least one; got {list(self.classes)}")


def select(arrays: ImageArrays, classes=None, subsample=None, path: str = "truth") -> ImageArrays:
    """``arrays`` restricted to ``classes`` (both splits) and to its first ``subsample`` train rows."""
    tx, ty, hx, hy = arrays.train_x, arrays.train_y, arrays.heldout_x, arrays.heldout_y
    if classes is not None:
        bad = [c for c in classes if not 0 <= c < arrays.num_classes]
        if bad:
            raise ConfigError(f"{path}.classes", f"labels must be in [0, {arrays.num_classes}), got {bad}")
        keep_t, keep_h = np.isin(ty, classes), np.isin(hy, classes)
        tx, ty, hx, hy = tx[keep_t], ty[keep_t], hx[keep_h], hy[keep_h]
    if subsample is not None:
        if subsample > len(tx):
            raise ConfigError(f"{path}.subsample", f"must be <= {len(tx)} (the train rows kept), got {subsample}")
        tx, ty = tx[:subsample], ty[:subsample]
    return arrays._replace(train_x=tx, train_y=ty, heldout_x=hx, heldout_y=hy)


def draw_rows(key, x, y, n: int):
    """n rows of (x [N, D], y [N]) as {"x": [n, D], "y": [n]}: distinct rows if N >= n."""
    N = x.shape[0]
    if N >= n:
        idx = jax.random.permutation(key, N)[:n]
    else:
        idx = jax.random.randint(key, (n,), 0, N)
    return {"x": x[idx], "y": y[idx]}


def image_source(arrays: ImageArrays, features=None) -> Source:
    """The Source of a finite image dataset: ``sample`` draws from the train split, ``heldout``
    from the held-out split (what the per-generation probe's truth rows are); ``features``: the
    dataset's feature network (Source.features) or None."""
    tx, ty = jnp.asarray(arrays.train_x), jnp.asarray(arrays.train_y)
    hx, hy = jnp.asarray(arrays.heldout_x), jnp.asarray(arrays.heldout_y)
    shares = np.bincount(arrays.train_y, minlength=arrays.num_classes) / len(arrays.train_y)
    params = {"image_shape": tuple(arrays.image_shape), "num_classes": arrays.num_classes,
              "class_names": tuple(arrays.class_names), "label_shares": shares.astype(np.float32),
              "train_size": int(tx.shape[0]), "heldout_size": int(hx.shape[0])}
    return Source(sample=lambda key, n: draw_rows(key, tx, ty, n), dim=int(tx.shape[1]),
                  params=params, heldout=lambda key, n: draw_rows(key, hx, hy, n), features=features)


def class_names_or_numbers(names: Sequence[str] | None, k: int) -> tuple:
    return tuple(names) if names else tuple(str(i) for i in range(k))
