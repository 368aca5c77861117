"""A small simulated 2-D dataset: three Gaussian clusters, for quick demos and tests."""

from __future__ import annotations

import numpy as np

#: Cluster centres and a shared isotropic standard deviation.
CENTRES = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
SCALE = 0.5
SPLIT_SIZES = {"train": 3000, "valid": 600, "test": 600}
SPLIT_SEEDS = {"train": 0, "valid": 1, "test": 2}


def load_clusters(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Points float32 ``[N, 2]`` and cluster labels int64 ``[N]``; each split has its own fixed seed."""
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    labels = rng.integers(0, len(CENTRES), size=SPLIT_SIZES[split])
    points = CENTRES[labels] + SCALE * rng.standard_normal((len(labels), 2))
    return points.astype(np.float32), labels.astype(np.int64)
