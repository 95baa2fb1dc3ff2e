"""Any tensorflow-datasets image dataset as a truth, read offline from a prepared ``data_dir``
(array_record files, ``scl prepare-data NAME --data-dir DIR`` on a machine with network) through
``tfds.data_source``: no TensorFlow at run time. The rows are read once on the host into numpy
(optionally resized and made grey), then served like every image truth (scl.data.images)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np

from scl.data.images import ImageArrays, ImageSelection, image_source, to_unit_range
from scl.data.source import Source
from scl.errors import ConfigError
from scl.options import static
from scl.registry import register_source

LUMA = np.array([0.299, 0.587, 0.114], np.float32)   # ITU-R BT.601 grey of an RGB pixel
READ_CHUNK = 1024


def tfds_module():
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ConfigError("truth.kind", 'tfds needs tensorflow-datasets: pip install "scl[datasets]"') from None
    return tfds


def prepare_command(name: str, data_dir: str) -> str:
    return f"scl prepare-data {name} --data-dir {data_dir}"


def prepare(name: str, data_dir: str) -> None:
    """Download and prepare dataset ``name`` under ``data_dir`` as array_record (needs network,
    and TensorFlow for datasets with image features: tfds encodes them with it)."""
    tfds = tfds_module()
    try:
        tfds.builder(name, data_dir=data_dir).download_and_prepare(file_format="array_record")
    except tfds.core.registered.DatasetNotFoundError:
        raise ConfigError("name", f"tensorflow-datasets has no dataset {name!r}") from None
    except Exception as e:       # no network, a builder needing TensorFlow, ...: one line
        first = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError("prepare-data", f"could not prepare {name!r}: {type(e).__name__}: {first}") from None


@dataclass(frozen=True)
class TfdsTruth(ImageSelection):
    """``truth: {kind: tfds, name: mnist, data_dir: DIR}``: a tensorflow-datasets image dataset,
    ``train_split`` the rows the loop draws from, ``heldout_split`` the metrics' rows. ``classes``
    keeps those labels; ``subsample`` caps the rows read from EACH split (the first k kept)."""

    tag_key = "kind"
    name = "tfds"
    rows = "image"
    dataset: str = static("mnist", "tensorflow-datasets name (mnist, fashion_mnist, cifar10, ...)")
    data_dir: Optional[str] = static(None, "folder holding the prepared dataset (required)")
    train_split: str = static("train", "split the loop draws real rows from")
    heldout_split: str = static("test", "split the metrics compare against (disjoint from train)")
    resize: Optional[tuple[int, ...]] = static(None, "resize images to [H, W] on the host (null: keep)", ge=1)
    greyscale: bool = static(False, "turn RGB images grey (BT.601 luma)")
    image_key: str = static("image", "feature holding the image")
    label_key: str = static("label", "feature holding the class label")

    def validate(self, path):
        super().validate(path)
        if not self.data_dir:
            raise ConfigError(f"{path}.data_dir", "required: the folder of the prepared dataset "
                              f"(prepare it with `{prepare_command(self.dataset, 'DIR')}`)")
        if self.resize is not None and len(self.resize) != 2:
            raise ConfigError(f"{path}.resize", f"must be [H, W], got {list(self.resize)}")
        if self.train_split == self.heldout_split:
            raise ConfigError(f"{path}.heldout_split", f"must differ from train_split ({self.train_split!r})")


def open_split(o: TfdsTruth, split: str, field: str):
    """tfds.data_source of one split; ConfigError naming truth.data_dir (not prepared) or the split."""
    tfds = tfds_module()
    try:
        tfds.data_source(o.dataset, data_dir=o.data_dir, download=False)
    except tfds.core.registered.DatasetNotFoundError:
        raise ConfigError("truth.dataset", f"tensorflow-datasets has no dataset {o.dataset!r}") from None
    except Exception:
        raise ConfigError("truth.data_dir", f"{o.dataset!r} is not prepared as array_record under {o.data_dir}; "
                          f"on a machine with network run `{prepare_command(o.dataset, o.data_dir)}` "
                          "and copy that folder here") from None
    try:
        return tfds.data_source(o.dataset, split=split, data_dir=o.data_dir, download=False)
    except Exception as e:
        raise ConfigError(f"truth.{field}", f"cannot open split {split!r} of {o.dataset!r}: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def read_rows(ds, image_key: str, label_key: str, classes=None, limit=None):
    """(images [n, H, W, C], labels [n]) of a data source, in its order: rows whose label is in
    ``classes`` (None: all), the first ``limit`` of them (None: all)."""
    images, labels, total = [], [], 0
    for start in range(0, len(ds), READ_CHUNK):
        idx = list(range(start, min(start + READ_CHUNK, len(ds))))
        try:
            rows = list(ds.__getitems__(idx))
        except TypeError:                     # tfds.testing.mock_data's source reads one row at a time
            rows = [ds[i] for i in idx]
        for r in rows:
            y = int(r[label_key])
            if classes is None or y in classes:
                images.append(np.asarray(r[image_key]))
                labels.append(y)
                total += 1
                if limit is not None and total == limit:
                    return np.stack(images), np.asarray(labels, np.int32)
    if not images:
        raise ConfigError("truth.classes", "no rows of the kept classes in the split")
    return np.stack(images), np.asarray(labels, np.int32)


def resize_images(x: np.ndarray, size) -> np.ndarray:
    """float32 [n, H, W, C] -> [n, h, w, C]: the mean of each block (area resize) when h, w divide
    H, W; otherwise antialiased linear interpolation (jax.image.resize), on the host CPU."""
    n, H, W, C = x.shape
    h, w = size
    if H % h == 0 and W % w == 0:
        return x.reshape(n, h, H // h, w, W // w, C).mean((2, 4))
    import jax
    with jax.default_device(jax.devices("cpu")[0]):
        return np.concatenate([np.asarray(jax.image.resize(x[i:i + READ_CHUNK], (len(x[i:i + READ_CHUNK]), h, w, C),
                                                           "linear", antialias=True))
                               for i in range(0, n, READ_CHUNK)])


def to_pixels(images: np.ndarray, resize=None, greyscale: bool = False) -> np.ndarray:
    """uint8 [n, H, W, C] -> float32 [n, H', W', C'] in [0, 255]: grey (C' = 1) if asked and RGB,
    resized to ``resize`` = (H', W') if given (resize_images)."""
    x = images.astype(np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if greyscale and x.shape[-1] == 3:
        x = (x @ LUMA)[..., None]
    if resize is not None and tuple(resize) != x.shape[1:3]:
        x = resize_images(x, resize)
    return np.clip(x, 0.0, 255.0)


@functools.lru_cache(maxsize=4)
def load_tfds(o: TfdsTruth) -> ImageArrays:
    """Host arrays of both splits of a prepared dataset (pixels in [-1, 1], flattened)."""
    train = open_split(o, o.train_split, "train_split")
    heldout = open_split(o, o.heldout_split, "heldout_split")
    feats = train.dataset_info.features
    for key, field in ((o.image_key, "image_key"), (o.label_key, "label_key")):
        if key not in feats:
            raise ConfigError(f"truth.{field}", f"{o.dataset!r} has no feature {key!r}; it has {', '.join(feats)}")
    label = feats[o.label_key]
    k = getattr(label, "num_classes", None)
    if k is None:
        raise ConfigError("truth.label_key", f"feature {o.label_key!r} of {o.dataset!r} is not a class label")
    if o.classes is not None and any(c >= k for c in o.classes):
        raise ConfigError("truth.classes", f"labels must be in [0, {k}), got {list(o.classes)}")
    names = tuple(getattr(label, "names", None) or (str(i) for i in range(k)))
    split_arrays = []
    for ds in (train, heldout):
        images, labels = read_rows(ds, o.image_key, o.label_key, o.classes, o.subsample)
        if images.dtype != np.uint8:
            raise ConfigError("truth.image_key", f"expected uint8 images, got {images.dtype}")
        pixels = to_pixels(images, o.resize, o.greyscale)
        split_arrays += [to_unit_range(pixels, 255.0), labels]
    return ImageArrays(*split_arrays, tuple(pixels.shape[1:]), names)


@register_source("tfds", TfdsTruth)
def make_tfds(opts: TfdsTruth) -> Source:
    """A prepared tensorflow-datasets image dataset (offline, no TensorFlow)."""
    return image_source(load_tfds(opts))
