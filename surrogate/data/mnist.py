"""MNIST and Fashion-MNIST: locate, verify, download and split.

The data folder is resolved in this order, first hit wins:

1. ``--data-dir`` (``data_dir=``), when given;
2. ``$SURROGATE_DATA_DIR/<dataset>`` if that folder exists, else ``$SURROGATE_DATA_DIR``;
3. ``$XDG_CACHE_HOME/surrogate/<dataset>`` (``~/.cache/surrogate/<dataset>``);
4. system folders (Debian's ``dataset-fashion-mnist`` package for Fashion-MNIST).

A folder given by (1) or (2) must hold the files. If no folder holds them, they
are downloaded into (3) where the network allows; offline, the error says which
files to put where. Every file is verified by the SHA-256 of its IDX content
(after gunzip), so the canonical ``.gz`` files, Debian's recompressed ones and
raw IDX files all pass, and a wrong, corrupt or swapped file is named.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from surrogate.data.idx import maybe_gunzip, parse_idx, read_bytes
from surrogate.errors import SurrogateError, check_choice
from surrogate.fileio import write_bytes

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class ImageDataset:
    """Where an IDX image dataset comes from and how to recognise its files."""

    name: str
    title: str
    content_sha256: dict[str, str]  # file stem -> SHA-256 of the (gunzipped) IDX content
    mirrors: tuple[str, ...]  # URL prefixes holding <stem>.gz
    system_dirs: tuple[str, ...] = ()
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))


MNIST = ImageDataset(
    name="mnist",
    title="MNIST",
    content_sha256={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
)

FASHION_MNIST = ImageDataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    content_sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)

IMAGE_DATASETS = {d.name: d for d in (MNIST, FASHION_MNIST)}
SPLITS = ("train", "valid", "test")
N_TRAIN = 50_000  # the first 50,000 training images; the last 10,000 are `valid`


def find_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem.gz`` or ``folder/stem``, whichever exists."""
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def cache_dir(dataset: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "surrogate" / dataset


def candidate_dirs(dataset: str, data_dir: str | os.PathLike | None = None) -> list[tuple[Path, str, bool]]:
    """(folder, where it came from, must it hold the files) in resolution order."""
    spec = IMAGE_DATASETS[dataset]
    if data_dir is not None:
        return [(Path(data_dir), "--data-dir", True)]
    found = []
    env = os.environ.get("SURROGATE_DATA_DIR")
    if env:
        base = Path(env)
        found.append((base / dataset if (base / dataset).is_dir() else base, "$SURROGATE_DATA_DIR", True))
    found.append((cache_dir(dataset), "cache", False))
    found += [(Path(p), "system", False) for p in spec.system_dirs]
    return found


def resolve_data_dir(dataset: str, data_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The folder that holds ``dataset``'s four files, and where it came from.

    Raises a :class:`SurrogateError` naming the folder and the missing files when a
    required folder is empty; returns the cache folder (for downloading) when no
    folder holds them.
    """
    check_choice("dataset", dataset, IMAGE_DATASETS)
    for folder, source, required in candidate_dirs(dataset, data_dir):
        missing = [s for s in FILES if find_file(folder, s) is None]
        if not missing:
            return folder, source
        if required:
            what = "does not exist" if not folder.is_dir() else f"lacks {', '.join(m + '.gz' for m in missing)}"
            raise SurrogateError(f"{source} folder {folder} {what}; it must hold the four {IMAGE_DATASETS[dataset].title} IDX files: {', '.join(f + '.gz' for f in FILES)}")
    return cache_dir(dataset), "cache (to download)"


def verify(content: bytes, path: Path, spec: ImageDataset, stem: str) -> None:
    """Check the SHA-256 of ``content`` against ``spec``; name the file and the culprit."""
    digest = hashlib.sha256(content).hexdigest()
    if digest == spec.content_sha256[stem]:
        return
    for other in IMAGE_DATASETS.values():
        if other.content_sha256.get(stem) == digest:
            raise SurrogateError(f"{path} holds {other.title}'s {stem}, not {spec.title}'s; point --data-dir at a {spec.title} folder")
    raise SurrogateError(
        f"{path} failed its checksum: SHA-256 of its IDX content is {digest}, expected "
        f"{spec.content_sha256[stem]} ({spec.title} {stem}); the file is corrupt or not the canonical one"
    )


def download(spec: ImageDataset, folder: Path, timeout: float = 30.0) -> None:
    """Fetch the four files into ``folder`` with verification, or explain what to do offline."""
    errors = []
    for stem in FILES:
        if find_file(folder, stem) is not None:
            continue
        for mirror in spec.mirrors:
            url = mirror + stem + ".gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    data = response.read()
                verify(maybe_gunzip(data, url), Path(url), spec, stem)
                write_bytes(folder / f"{stem}.gz", data)
                break
            except (urllib.error.URLError, OSError, SurrogateError) as exc:
                errors.append(f"{url}: {exc}")
        else:
            raise SurrogateError(
                f"{spec.title} is not available offline and could not be downloaded "
                f"({errors[-1]}). Put the four files {', '.join(f + '.gz' for f in FILES)} in {folder}, "
                f"or pass --data-dir DIR / set SURROGATE_DATA_DIR to a folder that holds them"
            )


@lru_cache(maxsize=4)
def load_raw(dataset: str, folder: str) -> dict[str, np.ndarray]:
    """All four arrays of ``dataset`` from ``folder``, verified."""
    spec = IMAGE_DATASETS[dataset]
    arrays = {}
    for stem in FILES:
        path = find_file(Path(folder), stem)
        content = read_bytes(path)
        verify(content, path, spec, stem)
        arrays[stem] = parse_idx(content, str(path))
    return arrays


def load_images(
    dataset: str = "mnist",
    split: str = "train",
    digits: tuple[int, ...] | None = None,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 ``[N, 784]`` in [0, 1] and labels as int64 ``[N]``.

    ``split`` is ``train`` (first 50,000 training images), ``valid`` (the last
    10,000) or ``test`` (the 10,000 test images); ``digits`` keeps only those
    labels; ``limit`` keeps the first ``limit`` images after filtering.
    """
    check_choice("split", split, SPLITS)
    spec = IMAGE_DATASETS[check_choice("dataset", dataset, IMAGE_DATASETS)]
    folder, _ = resolve_data_dir(dataset, data_dir)
    if any(find_file(folder, s) is None for s in FILES):
        download(spec, folder)
    arrays = load_raw(dataset, str(folder))
    prefix = "t10k" if split == "test" else "train"
    images, labels = arrays[f"{prefix}-images-idx3-ubyte"], arrays[f"{prefix}-labels-idx1-ubyte"]
    if split == "train":
        images, labels = images[:N_TRAIN], labels[:N_TRAIN]
    elif split == "valid":
        images, labels = images[N_TRAIN:], labels[N_TRAIN:]
    if digits:
        bad = [d for d in digits if not 0 <= d < len(spec.classes)]
        if bad:
            raise SurrogateError(f"digits must be labels in 0..{len(spec.classes) - 1}, found {bad}")
        keep = np.isin(labels, digits)
        images, labels = images[keep], labels[keep]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return x, labels.astype(np.int64)
