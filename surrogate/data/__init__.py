"""Datasets: MNIST-style images read from IDX files, and simulated data (clusters, GP draws)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surrogate.data.gp import DEFAULT_GRID, GP_DATASETS
from surrogate.data.mnist import IMAGE_DATASETS, SPLITS, load_images
from surrogate.data.toy import CENTRES, load_clusters
from surrogate.errors import SurrogateError, check_choice

DATASETS = (*IMAGE_DATASETS, "clusters", *GP_DATASETS, "spatial")  # spatial: prior draws on a domain (TrainConfig.prior)


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about its data."""

    dim: int  # values per example
    n_classes: int  # labels are 0..n_classes-1
    image_shape: tuple[int, ...] | None  # (28, 28) for images, None otherwise
    bounded: bool  # values in [0, 1] (sigmoid output, BCE loss) or real-valued
    condition: str = "class"  # what a CVAE is conditioned on: the one-hot "class" or the GP "lengthscale"


def dataset_info(dataset: str, grid: int | None = None) -> DatasetInfo:
    """Sizes of ``dataset``; ``grid`` (points per axis) sizes the GP datasets."""
    check_choice("dataset", dataset, DATASETS)
    if dataset == "spatial":
        raise SurrogateError("dataset spatial is sized by its domain: use TrainConfig(prior=..., map=...).data_info")
    if dataset in IMAGE_DATASETS:
        return DatasetInfo(dim=784, n_classes=10, image_shape=(28, 28), bounded=True)
    if dataset in GP_DATASETS:
        d = GP_DATASETS[dataset]
        n = grid or DEFAULT_GRID[d]
        return DatasetInfo(dim=n**d, n_classes=1, image_shape=(n, n) if d == 2 else None, bounded=False, condition="lengthscale")
    return DatasetInfo(dim=2, n_classes=len(CENTRES), image_shape=None, bounded=False)


def load_split(
    dataset: str,
    split: str,
    digits: tuple[int, ...] | None = None,
    data_dir=None,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(x float32 [N, dim], labels int64 [N])`` for one split of ``dataset``."""
    check_choice("dataset", dataset, DATASETS)
    check_choice("split", split, SPLITS)
    if dataset in (*GP_DATASETS, "spatial"):
        raise SurrogateError(f"dataset {dataset} is simulated afresh each epoch (surrogate.data.gp.GPPrior); it has no fixed {split} split")
    if dataset == "clusters":
        x, y = load_clusters(split)
        if digits:
            keep = np.isin(y, digits)
            x, y = x[keep], y[keep]
        return (x, y) if limit is None else (x[:limit], y[:limit])
    return load_images(dataset, split, digits, data_dir, limit)
