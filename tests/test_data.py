"""deep.data on tiny fixtures of every layout: pickled CIFAR-10, image folders and zips, IDX, synthetic."""
import gzip
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deep import data
from deep.data import (CIFAR10_CLASSES, DATASETS, NUM_CLASSES, Dataset, ImageSet, channel_stats, data_root_candidates,
                       default_data_root, load_dataset, read_idx)

REAL_ZIP = Path(data.__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar10-jpeg.zip"


def random_pixels(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(autouse=True)
def no_ambient_data(tmp_path, monkeypatch):
    """Tests see neither the user's data nor their cache: empty working dir, no env, private cache."""
    monkeypatch.delenv("SSLDYN_DATA", raising=False)
    monkeypatch.setenv("SSLDYN_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)


def load(name, root, tmp_path, **kwargs):
    return load_dataset(name, root, cache_dir=tmp_path / "cache", **kwargs)


def count_decodes(monkeypatch):
    calls = []
    decode = data._decode
    monkeypatch.setattr(data, "_decode", lambda *args: calls.append(args) or decode(*args))
    return calls


# ------------------------------------------------------------------------------------ fixtures


def write_cifar_batches(folder: Path, per_batch=3, meta=True):
    """torchvision's layout with `per_batch` images per batch; returns {split: (images N×3×32×32, labels)}."""
    folder.mkdir(parents=True)
    splits = {}
    for split, names in data.CIFAR10_BATCHES.items():
        images, labels = [], []
        for i, name in enumerate(names):
            pixels = random_pixels((per_batch, 3072), seed=10 * len(split) + i)
            batch_labels = [(i + j) % 10 for j in range(per_batch)]
            with open(folder / name, "wb") as file:
                pickle.dump({b"data": pixels, b"labels": batch_labels, b"batch_label": b"fake"}, file)
            images.append(pixels.reshape(-1, 3, 32, 32))
            labels += batch_labels
        splits[split] = (np.concatenate(images), np.array(labels))
    if meta:
        with open(folder / "batches.meta", "wb") as file:
            pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}, file)
    return splits


def write_image_folder(root: Path, classes, per_class=2, size=(32, 32), mode="RGB"):
    """PNG (lossless) images under train/<class>/ and test/<class>/; returns {split: {class: [HWC arrays]}}."""
    written = {}
    for split in ("train", "test"):
        written[split] = {}
        for k, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            channels = () if mode == "L" else (3,)
            arrays = [random_pixels((size[1], size[0], *channels), seed=100 * k + i + len(split))
                      for i in range(per_class)]
            for i, array in enumerate(arrays):
                Image.fromarray(array, mode).save(root / split / name / f"{i:04d}.png")
            written[split][name] = arrays
    return written


def zip_folder(folder: Path, target: Path, wrap: str = ""):
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, wrap + path.relative_to(folder).as_posix())
    return target


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_fashion_mnist(folder: Path, n_train=6, n_test=4, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train": (random_pixels((n_train, 28, 28), 1), np.arange(n_train) % 10),
              "test": (random_pixels((n_test, 28, 28), 2), (np.arange(n_test) + 3) % 10)}
    for split, (image_stem, label_stem) in data.FASHION_MNIST_FILES.items():
        for stem, array in zip((image_stem, label_stem), arrays[split]):
            content = idx_bytes(array)
            if gz:
                with gzip.open(folder / f"{stem}.gz", "wb") as file:
                    file.write(content)
            else:
                (folder / stem).write_bytes(content)
    return arrays


# ------------------------------------------------------------------------------------ cifar10


@pytest.mark.parametrize("point_at_batches", [False, True])
def test_cifar10_pickled_batches_load_exactly(tmp_path, point_at_batches):
    written = write_cifar_batches(tmp_path / "cifar-10-batches-py")
    root = tmp_path / "cifar-10-batches-py" if point_at_batches else tmp_path
    dataset = load("cifar10", root, tmp_path)
    assert dataset.classes == CIFAR10_CLASSES and dataset.name == "cifar10"
    assert len(dataset.classes) == NUM_CLASSES["cifar10"] == 10
    for split in ("train", "test"):
        part = getattr(dataset, split)
        assert torch.equal(part.images, torch.from_numpy(written[split][0]))
        assert torch.equal(part.labels, torch.from_numpy(written[split][1]).long())
    assert len(dataset.train) == 15 and len(dataset.test) == 3
    assert dataset.channels == 3 and dataset.image_size == (32, 32)


def test_cifar10_class_names_come_from_batches_meta_or_default_to_canonical(tmp_path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py", meta=False)
    assert load("cifar10", tmp_path, tmp_path).classes == CIFAR10_CLASSES


def test_image_folder_uses_canonical_cifar_order_when_names_match(tmp_path):
    shuffled = list(reversed(CIFAR10_CLASSES))
    written = write_image_folder(tmp_path / "folder", shuffled, per_class=1)
    dataset = load("cifar10", tmp_path / "folder", tmp_path)
    assert dataset.classes == CIFAR10_CLASSES
    for split in ("train", "test"):
        part = getattr(dataset, split)
        assert part.labels.tolist() == list(range(10))
        for k, name in enumerate(CIFAR10_CLASSES):
            expected = torch.from_numpy(written[split][name][0]).permute(2, 0, 1)
            assert torch.equal(part.images[k], expected)


def test_image_folder_with_other_names_sorts_classes_and_converts_gray_to_rgb(tmp_path):
    write_image_folder(tmp_path / "folder", ["zebra", "ant", "moth"], per_class=2, size=(16, 12), mode="L")
    dataset = load("cifar10", tmp_path / "folder", tmp_path)
    assert dataset.classes == ("ant", "moth", "zebra")
    assert dataset.train.images.shape == (6, 3, 12, 16) and dataset.train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(dataset.train.images[:, 0], dataset.train.images[:, 2])


@pytest.mark.parametrize("wrap", ["", "cifar10/"])
def test_zip_of_an_image_folder_equals_the_folder(tmp_path, wrap):
    write_image_folder(tmp_path / "folder", ["cat", "dog"], per_class=3)
    archive = zip_folder(tmp_path / "folder", tmp_path / "images.zip", wrap)
    zipped, folder = load("cifar10", archive, tmp_path), load("cifar10", tmp_path / "folder", tmp_path)
    assert zipped.classes == folder.classes == ("cat", "dog")
    for split in ("train", "test"):
        assert torch.equal(getattr(zipped, split).images, getattr(folder, split).images)
        assert torch.equal(getattr(zipped, split).labels, getattr(folder, split).labels)


def test_a_folder_holding_cifar10_jpeg_zip_finds_the_zip(tmp_path):
    write_image_folder(tmp_path / "folder", ["cat", "dog"])
    (tmp_path / "shared").mkdir()
    zip_folder(tmp_path / "folder", tmp_path / "shared" / "cifar10-jpeg.zip")
    found, images = load("cifar10", tmp_path / "shared", tmp_path), load("cifar10", tmp_path / "folder", tmp_path)
    assert len(found.train) == 4 and found.classes == ("cat", "dog")
    for split in ("train", "test"):
        assert torch.equal(getattr(found, split).images, getattr(images, split).images)
        assert torch.equal(getattr(found, split).labels, getattr(images, split).labels)


@pytest.mark.skipif(not REAL_ZIP.is_file(), reason=f"the real CIFAR-10 zip is not at {REAL_ZIP} (a clone without "
                                                  "../shared beside it; CI has it)")
def test_real_cifar10_zip_lists_the_canonical_split_and_decodes(tmp_path):
    """The shipped zip (only its directory and 20 of its images: fast): 50000/10000, canonical classes."""
    with zipfile.ZipFile(REAL_ZIP) as archive:
        members = [i.filename for i in archive.infolist() if not i.is_dir()]
        splits, classes = data._split_members(members, str(REAL_ZIP))
        sample = data._decode_images(splits["test"][::500], archive.read, str(REAL_ZIP))
    assert classes == CIFAR10_CLASSES
    assert len(splits["train"]) == 50000 and len(splits["test"]) == 10000
    assert sample.images.shape == (20, 3, 32, 32) and sample.labels.tolist() == [k // 2 for k in range(20)]


def test_download_fetches_into_ssldyn_data_when_nothing_is_found(tmp_path, monkeypatch):
    """`download=True` hands torchvision the first writable place; a stand-in for torchvision's
    CIFAR10 (no network in tests) writes the pickled layout there, and the load reads it back."""
    import torchvision

    fetched = []

    def fake_cifar10(root, train, download):
        fetched.append((Path(root), train, download))
        if not (Path(root) / "cifar-10-batches-py").exists():
            write_cifar_batches(Path(root) / "cifar-10-batches-py")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)
    monkeypatch.setattr(data, "_repo_dir", lambda: tmp_path / "nowhere" / "repo")
    monkeypatch.setenv("SSLDYN_DATA", str(tmp_path / "downloads"))
    with pytest.raises(FileNotFoundError):
        load_dataset("cifar10")
    assert fetched == []
    dataset = load_dataset("cifar10", download=True)
    assert fetched == [(tmp_path / "downloads", True, True), (tmp_path / "downloads", False, True)]
    assert len(dataset.train) == 15 and dataset.classes == CIFAR10_CLASSES


# ------------------------------------------------------------------------------------ fashion-mnist


@pytest.mark.parametrize("layout", ["flat-gz", "flat-raw", "torchvision", "named-folder"])
def test_fashion_mnist_idx_files_load_as_one_channel(tmp_path, layout):
    folder = {"flat-gz": tmp_path, "flat-raw": tmp_path, "torchvision": tmp_path / "FashionMNIST" / "raw",
              "named-folder": tmp_path / "fashion-mnist"}[layout]
    written = write_fashion_mnist(folder, gz=layout != "flat-raw")
    dataset = load("fashion-mnist", tmp_path, tmp_path)
    assert dataset.train.images.shape == (6, 1, 28, 28) and dataset.test.images.shape == (4, 1, 28, 28)
    assert torch.equal(dataset.train.images[:, 0], torch.from_numpy(written["train"][0]))
    assert dataset.test.labels.tolist() == written["test"][1].tolist()
    assert dataset.classes[0] == "T-shirt/top" and len(dataset.classes) == NUM_CLASSES["fashion-mnist"] == 10
    assert len(dataset.mean) == len(dataset.std) == 1
    assert dataset.channels == 1 and dataset.image_size == (28, 28)


def test_read_idx_round_trips_any_rank(tmp_path):
    array = random_pixels((2, 3, 4))
    (tmp_path / "a-idx3-ubyte").write_bytes(idx_bytes(array))
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), array)


# ------------------------------------------------------------------------------------ synthetic


def test_synthetic_is_deterministic_in_its_seed_and_shaped_like_cifar():
    a, b, c = load_dataset("synthetic", seed=1), load_dataset("synthetic", seed=1), load_dataset("synthetic", seed=2)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.train.images, c.train.images)
    assert a.train.images.shape == (500, 3, 32, 32) and a.test.images.shape == (200, 3, 32, 32)
    assert a.train.labels.bincount().tolist() == [50] * 10
    assert NUM_CLASSES["synthetic"] == len(a.classes) == 10  # what a probes.csv row's dataset is read as



def test_synthetic_classes_are_learnable_by_nearest_neighbours():
    dataset = load_dataset("synthetic", seed=0)
    flat = lambda part: torch.nn.functional.normalize(part.images.flatten(1).float() - 128, dim=1)  # noqa: E731
    nearest = (flat(dataset.test) @ flat(dataset.train).T).argmax(dim=1)
    accuracy = (dataset.train.labels[nearest] == dataset.test.labels).float().mean().item()
    assert accuracy > 0.9


# ------------------------------------------------------------------------------------ statistics


def test_channel_stats_equal_numpy_mean_and_std():
    images = torch.from_numpy(random_pixels((7, 3, 5, 4)))
    mean, std = channel_stats(images)
    pixels = images.numpy().transpose(1, 0, 2, 3).reshape(3, -1) / 255
    np.testing.assert_allclose(mean, pixels.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=1), rtol=1e-12)


def test_loaded_mean_and_std_are_the_train_splits(tmp_path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    dataset = load("cifar10", tmp_path, tmp_path)
    assert dataset.mean == channel_stats(dataset.train.images)[0]
    assert dataset.std == channel_stats(dataset.train.images)[1]


# ------------------------------------------------------------------------------------ cache


def test_second_load_comes_from_the_cache_without_decoding(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "folder", ["a", "b"])
    decodes = count_decodes(monkeypatch)
    first = load("cifar10", tmp_path / "folder", tmp_path)
    second = load("cifar10", tmp_path / "folder", tmp_path)
    assert len(decodes) == 1
    assert torch.equal(first.train.images, second.train.images) and torch.equal(first.test.labels, second.test.labels)
    assert (first.classes, first.mean, first.std) == (second.classes, second.mean, second.std)
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_changed_source_makes_the_cache_stale(tmp_path, monkeypatch):
    written = write_cifar_batches(tmp_path / "cifar-10-batches-py")
    decodes = count_decodes(monkeypatch)
    load("cifar10", tmp_path, tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    replacement = random_pixels((3, 3072), seed=99)
    with open(batch, "wb") as file:
        pickle.dump({b"data": replacement, b"labels": [1, 2, 3]}, file)
    os.utime(batch, ns=(1, 1))  # a different mtime even on a coarse clock
    reloaded = load("cifar10", tmp_path, tmp_path)
    assert len(decodes) == 2
    assert torch.equal(reloaded.test.images, torch.from_numpy(replacement.reshape(3, 3, 32, 32)))
    assert torch.equal(reloaded.train.images, torch.from_numpy(written["train"][0]))
    assert len(list((tmp_path / "cache").iterdir())) == 1  # replaced, not piled up


def test_added_image_makes_an_image_folder_cache_stale(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "folder", ["a", "b"])
    decodes = count_decodes(monkeypatch)
    assert len(load("cifar10", tmp_path / "folder", tmp_path).train) == 4
    Image.fromarray(random_pixels((32, 32, 3), 5)).save(tmp_path / "folder" / "train" / "a" / "extra.png")
    assert len(load("cifar10", tmp_path / "folder", tmp_path).train) == 5
    assert len(decodes) == 2


def test_corrupt_cache_file_is_decoded_again(tmp_path, monkeypatch):
    write_fashion_mnist(tmp_path)
    load("fashion-mnist", tmp_path, tmp_path)
    (cache_file,) = (tmp_path / "cache").iterdir()
    cache_file.write_bytes(cache_file.read_bytes()[:100])
    decodes = count_decodes(monkeypatch)
    assert len(load("fashion-mnist", tmp_path, tmp_path).train) == 6
    assert len(decodes) == 1


def test_default_cache_dir_is_ssldyn_cache(tmp_path):
    write_fashion_mnist(tmp_path / "fm")
    load_dataset("fashion-mnist", tmp_path / "fm")
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".pt"]


# ------------------------------------------------------------------------------------ where the data is


def test_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_repo_dir", lambda: tmp_path / "nowhere" / "repo")
    monkeypatch.setenv("SSLDYN_DATA", str(tmp_path / "env-data"))
    with pytest.raises(FileNotFoundError) as caught:
        load_dataset("cifar10")
    message = str(caught.value)
    for place in data_root_candidates("cifar10"):
        assert str(place) in message
    assert "--data-root" in message and "--download" in message and "\n" not in message
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path / "empty")


def test_resolution_order_is_env_then_usual_place_then_dot_data(tmp_path, monkeypatch):
    repo = tmp_path / "checkout" / "repo"
    monkeypatch.setattr(data, "_repo_dir", lambda: repo)
    dot_data = tmp_path / "work" / "data"  # the fixture's working dir
    assert data_root_candidates("cifar10") == (tmp_path / "checkout" / "shared" / "data" / "cifar10-jpeg.zip",
                                               dot_data)
    assert data_root_candidates("fashion-mnist") == (data.DEBIAN_FASHION_MNIST, dot_data)
    write_cifar_batches(dot_data / "cifar-10-batches-py")
    assert default_data_root("cifar10") == dot_data
    write_image_folder(tmp_path / "checkout" / "shared" / "data" / "folder", ["a", "b"], per_class=1)
    zip_folder(tmp_path / "checkout" / "shared" / "data" / "folder", data_root_candidates("cifar10")[0])
    assert default_data_root("cifar10") == data_root_candidates("cifar10")[0]
    write_cifar_batches(tmp_path / "env" / "cifar-10-batches-py")
    monkeypatch.setenv("SSLDYN_DATA", str(tmp_path / "env"))
    assert data_root_candidates("cifar10")[0] == tmp_path / "env"
    assert default_data_root("cifar10") == tmp_path / "env"
    assert len(load_dataset("cifar10").train) == 15


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="cifar10, fashion-mnist, synthetic"):
        load_dataset("imagenet")
    assert DATASETS == ("cifar10", "fashion-mnist", "synthetic")


# ------------------------------------------------------------------------------------ corrupt data


def test_bad_zip_names_the_file(tmp_path):
    bad = tmp_path / "images.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(ValueError, match="images.zip"):
        load("cifar10", bad, tmp_path)


def test_unreadable_image_names_the_file(tmp_path):
    write_image_folder(tmp_path / "folder", ["a", "b"])
    (tmp_path / "folder" / "train" / "b" / "0001.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="train/b/0001.png"):
        load("cifar10", tmp_path / "folder", tmp_path)


def test_images_of_different_sizes_are_refused(tmp_path):
    write_image_folder(tmp_path / "folder", ["a", "b"])
    Image.fromarray(random_pixels((20, 20, 3))).save(tmp_path / "folder" / "test" / "a" / "0000.png")
    with pytest.raises(ValueError, match="test/a/0000.png"):
        load("cifar10", tmp_path / "folder", tmp_path)


def test_train_and_test_with_different_classes_are_refused(tmp_path):
    write_image_folder(tmp_path / "folder", ["a", "b"])
    (tmp_path / "folder" / "test" / "c").mkdir()
    Image.fromarray(random_pixels((32, 32, 3))).save(tmp_path / "folder" / "test" / "c" / "x.png")
    with pytest.raises(ValueError, match="different classes"):
        load("cifar10", tmp_path / "folder", tmp_path)


def test_truncated_idx_names_the_file(tmp_path):
    write_fashion_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])  # a cut gzip stream
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        load("fashion-mnist", tmp_path, tmp_path)
    with gzip.open(path, "wb") as file:  # a whole gzip stream around a cut array
        file.write(idx_bytes(random_pixels((4, 28, 28)))[:-5])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz.*truncated"):
        load("fashion-mnist", tmp_path, tmp_path)


def test_corrupt_cifar_batch_names_the_file(tmp_path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04 not a pickle")
    with pytest.raises(ValueError, match="data_batch_3"):
        load("cifar10", tmp_path, tmp_path)


# ------------------------------------------------------------------------------------ containers


def test_image_set_checks_its_tensors():
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="labels"):
        ImageSet(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))
    part = ImageSet(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64))
    assert part.to("cpu").images.shape == (2, 3, 4, 4)
    assert isinstance(load_dataset("synthetic"), Dataset)
