"""Write scl/data/digits.npz: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes;
UCI ML hand-written digits, BSD-licensed copy in scikit-learn) as uint8 pixel values 0..16.

Run once (needs scikit-learn); the file ships inside the package so scl never needs sklearn or
the network for its embedded default image dataset.
"""
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

if __name__ == "__main__":
    d = load_digits()
    out = Path(__file__).resolve().parents[1] / "scl" / "data" / "digits.npz"
    np.savez_compressed(out, images=d.images.astype(np.uint8), labels=d.target.astype(np.uint8))
    print(f"wrote {out} ({out.stat().st_size} bytes): images {d.images.shape}, labels {d.target.shape}")
