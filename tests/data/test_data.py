import gzip
import shutil

import numpy as np
import pytest

from surrogate.data import load_split
from surrogate.data.idx import read_idx, write_idx
from surrogate.data.mnist import FILES, load_images, resolve_data_dir
from surrogate.errors import SurrogateError


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_idx_rejects_bad_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 12)
    with pytest.raises(SurrogateError, match=r"not an IDX file: magic number 0x01020801"):
        read_idx(path)


def test_idx_rejects_truncated_file(tmp_path):
    path = tmp_path / "short.gz"
    write_idx(path, np.zeros((10, 4), np.uint8))
    content = gzip.decompress(path.read_bytes())[:-7]
    path.write_bytes(gzip.compress(content))
    with pytest.raises(SurrogateError, match=r"short.gz is truncated: shape \(10, 4\) needs 52 bytes, found 45"):
        read_idx(path)


def test_idx_rejects_corrupt_gzip(tmp_path):
    path = tmp_path / "corrupt.gz"
    write_idx(path, np.zeros((100, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(SurrogateError, match="corrupt.gz is a corrupt or truncated gzip file"):
        read_idx(path)


def test_reads_real_mnist_files(mnist_dir):
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and set(np.unique(labels)) == set(range(10))


def test_splits_are_50k_10k_10k_in_unit_interval(mnist_dir):
    sizes = {}
    for split in ("train", "valid", "test"):
        x, y = load_images("mnist", split, data_dir=mnist_dir)
        assert x.dtype == np.float32 and x.shape[1] == 784
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() == 1.0
        sizes[split] = len(x)
    assert sizes == {"train": 50_000, "valid": 10_000, "test": 10_000}
    _, y = load_images("mnist", "valid", data_dir=mnist_dir)
    assert y[0] == 3  # the reference inpainting digit


def test_digit_filter_and_limit(mnist_dir):
    x, y = load_images("mnist", "train", digits=(5,), data_dir=mnist_dir)
    assert set(y) == {5} and 4000 < len(y) < 5000
    x, y = load_images("mnist", "test", digits=(3, 5), data_dir=mnist_dir, limit=100)
    assert len(x) == 100 and set(y) <= {3, 5}
    with pytest.raises(SurrogateError, match=r"digits must be labels in 0..9, found \[12\]"):
        load_images("mnist", "test", digits=(12,), data_dir=mnist_dir)


def copy_mnist(src, dst):
    dst.mkdir()
    for stem in FILES:
        shutil.copy(src / f"{stem}.gz", dst / f"{stem}.gz")
    return dst


def test_checksum_mismatch_names_the_file(tmp_path, mnist_dir):
    folder = copy_mnist(mnist_dir, tmp_path / "mnist")
    path = folder / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[100] = (content[100] + 1) % 10  # one label changed: still valid IDX
    path.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(SurrogateError, match=r"t10k-labels-idx1-ubyte.gz failed its checksum"):
        load_images("mnist", "test", data_dir=folder)


def test_raw_idx_files_pass_verification(tmp_path, mnist_dir):
    folder = tmp_path / "raw"
    folder.mkdir()
    for stem in FILES:
        (folder / stem).write_bytes(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes()))
    x, _ = load_images("mnist", "test", data_dir=folder, limit=5)
    x_ref, _ = load_images("mnist", "test", data_dir=mnist_dir, limit=5)
    np.testing.assert_array_equal(x, x_ref)


def test_mnist_files_are_not_taken_for_fashion_mnist(mnist_dir):
    with pytest.raises(SurrogateError, match=r"holds MNIST's train-images-idx3-ubyte, not Fashion-MNIST's"):
        load_images("fashion-mnist", "train", data_dir=mnist_dir)


def test_missing_and_empty_data_dirs_are_clear(tmp_path):
    with pytest.raises(SurrogateError, match=r"--data-dir folder .*nowhere does not exist"):
        resolve_data_dir("mnist", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SurrogateError, match=r"empty lacks train-images-idx3-ubyte.gz, .*t10k-labels-idx1-ubyte.gz"):
        resolve_data_dir("mnist", tmp_path / "empty")


def test_env_var_then_cache(tmp_path, monkeypatch, mnist_dir):
    monkeypatch.setenv("SURROGATE_DATA_DIR", str(mnist_dir))
    assert resolve_data_dir("mnist") == (mnist_dir, "$SURROGATE_DATA_DIR")
    monkeypatch.delenv("SURROGATE_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir("mnist") == (tmp_path / "cache" / "surrogate" / "mnist", "cache (to download)")


def test_offline_download_says_which_files_to_put_where(tmp_path, monkeypatch):
    import surrogate.data.mnist as m

    monkeypatch.delenv("SURROGATE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # a port on this machine where nothing listens: the download fails at once, as offline
    monkeypatch.setattr(m, "MNIST", m.MNIST.__class__(**{**m.MNIST.__dict__, "mirrors": ("http://127.0.0.1:9/",)}))
    monkeypatch.setitem(m.IMAGE_DATASETS, "mnist", m.MNIST)
    with pytest.raises(SurrogateError) as info:
        load_images("mnist", "test")
    message = str(info.value)
    assert "could not be downloaded" in message
    assert "Put the four files train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "surrogate" / "mnist") in message


def test_clusters_dataset():
    x, y = load_split("clusters", "train")
    assert x.shape == (3000, 2) and x.dtype == np.float32 and set(y) == {0, 1, 2}
    for label, centre in enumerate(([-2, 0], [2, 0], [0, 2.5])):
        np.testing.assert_allclose(x[y == label].mean(axis=0), centre, atol=0.06)
        np.testing.assert_allclose(x[y == label].std(axis=0), 0.5, atol=0.04)
    x2, _ = load_split("clusters", "train")
    np.testing.assert_array_equal(x, x2)
