"""The 8x8 handwritten digits (scikit-learn's copy, shipped inside scl): the embedded image truth."""
from __future__ import annotations

from dataclasses import dataclass

from scl import features
from scl.data.images import ImageSelection, image_source, load_digits, select
from scl.data.source import Source
from scl.registry import register_source


@dataclass(frozen=True)
class DigitsTruth(ImageSelection):
    """``truth: {kind: digits}``: 1,797 8x8 greyscale digits, 10 classes; 1,297 train rows the
    loop draws from, 500 held-out rows the metrics compare against (a fixed split);
    ``classes`` / ``subsample`` as for every image truth (scl.data.images.ImageSelection)."""

    tag_key = "kind"
    name = "digits"
    rows = "image"


@register_source("digits", DigitsTruth)
def make_digits(opts: DigitsTruth) -> Source:
    """8x8 handwritten digits (embedded; rows {"x": [n, 64] in [-1, 1], "y": [n]})."""
    arrays = select(load_digits(), opts.classes, opts.subsample)
    net = features.load("digits", arrays.image_shape, arrays.num_classes)
    return image_source(arrays, features.rows_features(net) if net is not None else None)
