"""Image data sets as whole uint8 tensors (SPEC §3 "Data"), decoded once and cached.

`load_dataset(name, root)` returns the train and test splits as contiguous uint8 N×C×H×W tensors
with int64 labels, small enough to live on the training device whole (CIFAR-10: 184 MB).

Sources:
- ``cifar10``: the torchvision layout (``cifar-10-batches-py/`` under root, or that folder itself),
  an image folder (``train/<class>/*``, ``test/<class>/*``), or a zip of one (the zip's path, or
  the folder holding ``cifar10-jpeg.zip``, this project's offline copy). Classes keep
  CIFAR-10's canonical order when the folder names are CIFAR-10's, else they are sorted.
  ``download=True`` fetches the torchvision layout when nothing is found.
- ``fashion-mnist``: the four IDX files (``.gz`` or not) in root, in ``root/fashion-mnist`` or in
  torchvision's ``root/FashionMNIST/raw``; 1 channel, 28×28.
- ``synthetic``: a few hundred class-structured 3×32×32 images made from `seed` (for tests).

Decoded sources are cached in `cache_dir` (default ``$SSLDYN_CACHE`` or ``~/.cache/ssldyn``), one
file per source, stamped with the path, size and modification time of every source file: a changed
source is decoded again and its cache replaced atomically.

Per-channel mean and std (in [0, 1] units) are computed exactly from the train split's pixel
histograms when it is decoded (not taken from published constants, which belong to the original
CIFAR-10 rather than its JPEG re-encoding), and cached with it.
"""
import gzip
import hashlib
import io
import os
import pickle
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DATASETS = ("cifar10", "fashion-mnist", "synthetic")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
FASHION_MNIST_FILES = {  # split -> (images, labels), the names Zalando publishes
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
CIFAR10_ZIP = "cifar10-jpeg.zip"  # the offline copy's name (SPEC §3 "Data"), found in a --data-root folder
SYNTHETIC_SIZES = {"train": 50, "test": 20}  # images per class
SYNTHETIC_CLASSES = 10
NUM_CLASSES = {"cifar10": len(CIFAR10_CLASSES), "fashion-mnist": len(FASHION_MNIST_CLASSES),
               "synthetic": SYNTHETIC_CLASSES}  # what a probes.csv row's dataset means for chance kNN, without loading it
CACHE_FORMAT = 1  # bump when the cached content changes meaning


@dataclass(frozen=True)
class ImageSet:
    """One split: images uint8 N×C×H×W (contiguous), labels int64 N."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or not self.images.is_contiguous():
            raise ValueError(f"images must be a contiguous uint8 N×C×H×W tensor, got {self.images.dtype} "
                             f"of shape {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"labels must be int64 of shape ({self.images.shape[0]},), got {self.labels.dtype} "
                             f"of shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device) -> "ImageSet":
        """The same split on `device` (the whole set lives where the training runs)."""
        return ImageSet(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class Dataset:
    """A data set: both splits, the class names (label i is classes[i]) and the train split's
    per-channel pixel mean and std in [0, 1] units."""

    name: str
    train: ImageSet
    test: ImageSet
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.images.shape[2:])


# ---------------------------------------------------------------------------------------- where


def _repo_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def data_root_candidates(name: str) -> tuple[Path, ...]:
    """Where a missing --data-root is looked for, in order: $SSLDYN_DATA, the data set's usual place
    (cifar10: <repo>/../shared/data/cifar10-jpeg.zip; fashion-mnist: the Debian package's folder),
    then ./data."""
    _check_name(name)
    candidates = [Path(os.environ["SSLDYN_DATA"])] if os.environ.get("SSLDYN_DATA") else []
    if name == "cifar10":
        candidates.append(_repo_dir().parent / "shared" / "data" / CIFAR10_ZIP)
    elif name == "fashion-mnist":
        candidates.append(DEBIAN_FASHION_MNIST)
    candidates.append(Path("data").absolute())
    return tuple(candidates)


def default_data_root(name: str) -> Path:
    """The first of `data_root_candidates(name)` that holds the data set; FileNotFoundError if none does."""
    candidates = data_root_candidates(name)
    for root in candidates:
        if _locate(name, root) is not None:
            return root
    raise _not_found(name, candidates)


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def _not_found(name: str, looked: tuple[Path, ...]) -> FileNotFoundError:
    how = {
        "cifar10": f"pass --data-root pointing at a folder holding cifar-10-batches-py/, {CIFAR10_ZIP} or an "
                   "image folder (train/<class>/*, test/<class>/*), or at a zip of such a folder itself, or pass "
                   "--download (torchvision's copy)",
        "fashion-mnist": "pass --data-root pointing at a folder with the four IDX files, or install them with "
                         "`apt-get install dataset-fashion-mnist` (into /usr/share/datasets/fashion-mnist), "
                         "or pass --download (torchvision's copy)",
    }[name]
    places = ", ".join(str(p) for p in looked)
    return FileNotFoundError(f"no {name} data found; looked in: {places}; to get it: {how}")


def _locate(name: str, root: Path) -> tuple[str, Path] | None:
    """(layout, path) of the data set under `root`, or None. Layouts: cifar-pickle, image-folder,
    image-zip, idx."""
    root = Path(root)
    if name == "cifar10":
        if root.is_file():
            return ("image-zip", root) if zipfile.is_zipfile(root) or root.suffix == ".zip" else None
        for folder in (root / "cifar-10-batches-py", root):
            if (folder / CIFAR10_BATCHES["test"][0]).is_file():
                return "cifar-pickle", folder
        if (root / "train").is_dir() and (root / "test").is_dir():
            return "image-folder", root
        if (root / CIFAR10_ZIP).is_file():
            return "image-zip", root / CIFAR10_ZIP
        return None
    for folder in (root, root / "fashion-mnist", root / "FashionMNIST" / "raw"):
        if all(_idx_file(folder, stem) is not None for pair in FASHION_MNIST_FILES.values() for stem in pair):
            return "idx", folder
    return None


def _idx_file(folder: Path, stem: str) -> Path | None:
    for path in (folder / f"{stem}.gz", folder / stem):
        if path.is_file():
            return path
    return None


# ---------------------------------------------------------------------------------------- load


def load_dataset(name: str, root: str | Path | None = None, *, cache_dir: Path | None = None,
                 download: bool = False, seed: int = 0) -> Dataset:
    """Load data set `name` (one of DATASETS) from `root` (default: `default_data_root(name)`).

    `seed` only matters for ``synthetic``. `download` lets torchvision fetch cifar10 or
    fashion-mnist into `root` (or $SSLDYN_DATA, or ./data) when it is not there. Raises
    FileNotFoundError (saying where it looked and how to get the data) when the data are missing,
    ValueError naming the file when they are corrupt.
    """
    _check_name(name)
    if name == "synthetic":
        return synthetic_dataset(seed)
    looked = data_root_candidates(name) if root is None else (Path(root),)
    found = next((hit for hit in (_locate(name, r) for r in looked) if hit is not None), None)
    if found is None:
        if not download:
            raise _not_found(name, looked)
        found = _download(name, Path(root or os.environ.get("SSLDYN_DATA") or looked[-1]))
    layout, path = found
    return _cached(name, layout, path, _cache_dir(cache_dir))


def _download(name: str, root: Path) -> tuple[str, Path]:
    import torchvision

    root.mkdir(parents=True, exist_ok=True)
    source = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.FashionMNIST
    for train in (True, False):
        source(str(root), train=train, download=True)
    found = _locate(name, root)
    if found is None:
        raise FileNotFoundError(f"downloaded {name} into {root} but cannot find it there")
    return found


def _cache_dir(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("SSLDYN_CACHE") or Path.home() / ".cache" / "ssldyn")


def _folder_images(root: Path) -> list[tuple[str, os.DirEntry]]:
    """(``<split>/<class>/<file>``, entry) for every file at that depth of an image folder."""
    found = []
    for split in ("train", "test"):
        for class_dir in os.scandir(root / split):
            if class_dir.is_dir():
                found += [(f"{split}/{class_dir.name}/{entry.name}", entry)
                          for entry in os.scandir(class_dir.path) if entry.is_file()]
    return found


def _stamp(layout: str, path: Path) -> str:
    """A digest of what the cache must match: format, layout, source, and the name, size and mtime
    of every source file (for an image folder, all its images: a few hundred ms for 60,000)."""
    if layout == "image-folder":
        files = [(member, entry.stat()) for member, entry in _folder_images(path)]
    elif layout == "cifar-pickle":
        files = [(name, (path / name).stat()) for name in CIFAR10_BATCHES["train"] + CIFAR10_BATCHES["test"]]
    elif layout == "idx":
        files = [(f.name, f.stat()) for f in (_idx_file(path, stem) for pair in FASHION_MNIST_FILES.values()
                                              for stem in pair)]
    else:
        files = [(path.name, path.stat())]
    digest = hashlib.sha256(f"{CACHE_FORMAT}\0{layout}\0{path.resolve()}\n".encode())
    digest.update("".join(f"{name}\0{info.st_size}\0{info.st_mtime_ns}\n" for name, info in files).encode())
    return digest.hexdigest()


def _cached(name: str, layout: str, path: Path, cache_dir: Path) -> Dataset:
    """The decoded data set, from the cache when its stamp matches the source, else decoded and cached."""
    stamp = _stamp(layout, path)
    cache_file = cache_dir / f"{name}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}.pt"
    try:
        cached = torch.load(cache_file, weights_only=True)
    except Exception:  # missing, truncated or foreign: decode again and overwrite it
        cached = None
    if isinstance(cached, dict) and cached.get("stamp") == stamp:
        return _from_record(name, cached)

    record = _decode(layout, path)
    record["stamp"] = stamp
    try:
        _save_atomically(record, cache_file)
    except OSError as err:
        warnings.warn(f"could not write the {name} cache {cache_file}: {err}; the next load decodes again")
    return _from_record(name, record)


def _save_atomically(record: dict, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(record, file)
        os.replace(temp, target)
    except BaseException:
        os.unlink(temp)
        raise


def _from_record(name: str, record: dict) -> Dataset:
    return Dataset(
        name=name,
        train=ImageSet(record["train_images"], record["train_labels"]),
        test=ImageSet(record["test_images"], record["test_labels"]),
        classes=tuple(record["classes"]),
        mean=tuple(record["mean"]),
        std=tuple(record["std"]),
    )


def _record(train: ImageSet, test: ImageSet, classes) -> dict:
    mean, std = channel_stats(train.images)
    return {"train_images": train.images, "train_labels": train.labels, "test_images": test.images,
            "test_labels": test.labels, "classes": list(classes), "mean": list(mean), "std": list(std)}


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 N×C×H×W images in [0, 1] units, exact: from
    each channel's 256-bin histogram, without a float copy of the images."""
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        total = counts.sum()
        mean = (counts * values).sum() / total
        means.append(float(mean))
        stds.append(float(((counts * (values - mean) ** 2).sum() / total).sqrt()))
    return tuple(means), tuple(stds)


# ---------------------------------------------------------------------------------------- decode


def _decode(layout: str, path: Path) -> dict:
    if layout == "cifar-pickle":
        return _decode_cifar_pickle(path)
    if layout == "idx":
        return _decode_idx(path)
    if layout == "image-zip":
        return _decode_image_zip(path)
    return _decode_image_folder(path)


def _decode_cifar_pickle(folder: Path) -> dict:
    """torchvision's CIFAR-10 layout: pickled dicts with b"data" (N×3072 uint8, CHW order) and b"labels"."""
    splits = {}
    for split, names in CIFAR10_BATCHES.items():
        images, labels = [], []
        for name in names:
            batch = _unpickle(folder / name)
            try:
                data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                batch_labels = np.asarray(batch[b"labels"], dtype=np.int64)
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{folder / name} is not a CIFAR-10 batch ({err})") from None
            if len(batch_labels) != len(data) or not ((0 <= batch_labels) & (batch_labels < 10)).all():
                raise ValueError(f"{folder / name} is not a CIFAR-10 batch (labels do not match the images)")
            images.append(data)
            labels.append(batch_labels)
        splits[split] = ImageSet(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)))
    meta = folder / "batches.meta"
    classes = CIFAR10_CLASSES
    if meta.is_file():
        classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in _unpickle(meta)[b"label_names"])
    return _record(splits["train"], splits["test"], classes)


def _unpickle(path: Path) -> dict:
    # The batches are pickles by construction (Krizhevsky 2009); only load ones the user points at.
    try:
        with open(path, "rb") as file:
            content = pickle.load(file, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise ValueError(f"cannot read CIFAR-10 batch {path}: {err}") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path} is not a CIFAR-10 batch (holds a {type(content).__name__})")
    return content


def _decode_idx(folder: Path) -> dict:
    splits = {}
    for split, (image_stem, label_stem) in FASHION_MNIST_FILES.items():
        images = read_idx(_idx_file(folder, image_stem))
        labels = read_idx(_idx_file(folder, label_stem))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{folder}: {image_stem} ({images.shape}) and {label_stem} ({labels.shape}) "
                             "are not N×H×W images with N labels")
        splits[split] = ImageSet(torch.from_numpy(images[:, None].copy()), torch.from_numpy(labels.astype(np.int64)))
    return _record(splits["train"], splits["test"], FASHION_MNIST_CLASSES)


def read_idx(path: Path) -> np.ndarray:
    """A uint8 IDX array (LeCun's MNIST format): 0, 0, type 0x08, rank; big-endian int32 sizes; data.

    Gzipped when the name ends in .gz. Raises ValueError naming the file when it is not such an array.
    """
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as file:
            content = file.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"cannot read IDX file {path}: {err}") from None
    if len(content) < 4 or content[:2] != b"\0\0" or content[2] != 0x08:
        raise ValueError(f"{path} is not a uint8 IDX file (bad magic number)")
    rank = content[3]
    header = 4 + 4 * rank
    shape = tuple(int(n) for n in np.frombuffer(content[4:header], dtype=">i4")) if len(content) >= header else None
    if shape is None or len(content) != header + int(np.prod(shape)):
        raise ValueError(f"{path} is truncated or padded: its header does not match its size ({len(content)} bytes)")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape)


def _class_order(names) -> tuple[str, ...]:
    names = set(names)
    return CIFAR10_CLASSES if names == set(CIFAR10_CLASSES) else tuple(sorted(names))


def _split_members(members: list[str], where: str) -> tuple[dict, tuple[str, ...]]:
    """{split: [(member, label)]} and the class names from paths ``<split>/<class>/<file>``."""
    by_split = {"train": {}, "test": {}}
    for member in members:
        parts = member.split("/")
        if len(parts) == 3 and parts[0] in by_split and parts[2].lower().endswith(IMAGE_SUFFIXES):
            by_split[parts[0]].setdefault(parts[1], []).append(member)
    train_classes, test_classes = set(by_split["train"]), set(by_split["test"])
    if not train_classes:
        raise ValueError(f"{where} has no images under train/<class>/")
    if train_classes != test_classes:
        raise ValueError(f"{where}: train/ and test/ have different classes "
                         f"({sorted(train_classes ^ test_classes)} are in only one)")
    classes = _class_order(train_classes)
    return {split: [(m, classes.index(c)) for c in classes for m in sorted(found[c])]
            for split, found in by_split.items()}, classes


def _decode_images(items, read, where: str) -> ImageSet:
    """Decode [(member, label)] with `read(member) -> bytes` into RGB uint8; all images the same size."""
    from PIL import Image

    images = None
    for index, (member, _) in enumerate(items):
        try:
            with Image.open(io.BytesIO(read(member))) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, ValueError, zipfile.BadZipFile, Image.DecompressionBombError) as err:
            raise ValueError(f"cannot decode image {where}/{member}: {err}") from None
        if images is None:
            images = np.empty((len(items), *pixels.shape), dtype=np.uint8)
        if pixels.shape != images.shape[1:]:
            raise ValueError(f"image {where}/{member} is {pixels.shape[1]}×{pixels.shape[0]} but "
                             f"{where}/{items[0][0]} is {images.shape[2]}×{images.shape[1]}: "
                             "all images must have one size")
        images[index] = pixels
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    return ImageSet(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels)


def _decode_splits(splits: dict, classes, read, where: str) -> dict:
    """Decode both splits in one pass (so that one image size holds for both) into a cache record."""
    both = _decode_images(splits["train"] + splits["test"], read, where)
    n_train = len(splits["train"])
    train = ImageSet(both.images[:n_train], both.labels[:n_train])
    test = ImageSet(both.images[n_train:], both.labels[n_train:])
    return _record(train, test, classes)


def _decode_image_zip(path: Path) -> dict:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"cannot open zip {path}: {err}") from None
    with archive:
        members = [info.filename for info in archive.infolist() if not info.is_dir()]
        top = {m.split("/")[0] for m in members}
        prefix = f"{top.pop()}/" if len(top) == 1 and not {"train", "test"} & top else ""  # one wrapping folder
        splits, classes = _split_members([m[len(prefix):] for m in members], str(path))
        return _decode_splits(splits, classes, lambda m: archive.read(prefix + m), str(path))


def _decode_image_folder(root: Path) -> dict:
    splits, classes = _split_members([member for member, _ in _folder_images(root)], str(root))
    return _decode_splits(splits, classes, lambda m: (root / m).read_bytes(), str(root))


# ---------------------------------------------------------------------------------------- synthetic


def synthetic_dataset(seed: int = 0) -> Dataset:
    """10 classes of 3×32×32 images, 50 train and 20 test per class, deterministic in `seed`.

    Class k has its own colour and a stripe pattern at its own orientation and frequency; each image
    draws a random stripe phase, a brightness, a colour shift and pixel noise. Colour alone, or the
    stripes alone, tell the classes apart, so both a pixel-space kNN and a network trained under
    colour jitter can learn them.
    """
    generator = torch.Generator().manual_seed(seed)
    k = torch.arange(SYNTHETIC_CLASSES, dtype=torch.float64)
    hue = k / SYNTHETIC_CLASSES
    colours = 0.5 + 0.35 * torch.stack([torch.cos(2 * torch.pi * (hue + shift)) for shift in (0, 1 / 3, 2 / 3)], 1)
    angles = torch.pi * k / SYNTHETIC_CLASSES
    frequencies = 2 * torch.pi * (2 + k % 3) / 32
    y, x = torch.meshgrid(torch.arange(32.0, dtype=torch.float64), torch.arange(32.0, dtype=torch.float64),
                          indexing="ij")

    def split(per_class: int) -> ImageSet:
        labels = torch.arange(SYNTHETIC_CLASSES).repeat_interleave(per_class)
        n = len(labels)
        uniform = torch.rand(n, 5, generator=generator, dtype=torch.float64)
        phase = 2 * torch.pi * uniform[:, 0]
        projection = x * torch.cos(angles[labels])[:, None, None] + y * torch.sin(angles[labels])[:, None, None]
        stripes = torch.sin(frequencies[labels][:, None, None] * projection + phase[:, None, None])
        colour = colours[labels] + 0.08 * (uniform[:, 1:4] - 0.5)
        brightness = 0.8 + 0.4 * uniform[:, 4]
        noise = 0.06 * torch.randn(n, 3, 32, 32, generator=generator, dtype=torch.float64)
        pixels = brightness[:, None, None, None] * colour[:, :, None, None] * (1 + 0.35 * stripes[:, None]) + noise
        images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
        return ImageSet(images, labels)

    train, test = split(SYNTHETIC_SIZES["train"]), split(SYNTHETIC_SIZES["test"])
    record = _record(train, test, [f"class{i}" for i in range(SYNTHETIC_CLASSES)])
    return _from_record("synthetic", record)
