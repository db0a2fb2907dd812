"""Image sources: where the pixels come from.

A source is either file-based (a list of image files, decoded by the shared cache builder) or
array-based (it produces a uint8 array itself: procedural posters, idx files, fake data).
Every source has ``check()`` (fails fast with a one-line :class:`DataError` saying where it
looked and how to set ``data.root``) and ``fingerprint()`` (what identifies its content in the
decoded-image cache).
"""

from __future__ import annotations

import csv
import gzip
import struct
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gan_interp.data.decode import CropFraction, list_image_files
from gan_interp.errors import DataError


def _files_fingerprint(files: list[Path]) -> dict[str, Any]:
    """Cheap content identity of a file list: count, names, sizes and mtimes (hashed later)."""
    stats = [(str(p), p.stat().st_size, int(p.stat().st_mtime)) for p in files]
    return {"n_files": len(files), "files": stats}


class ImageSource(ABC):
    """Base class: a named source of images with a fixed channel count."""

    name: str = "source"
    channels: int = 3
    crop_fraction: float = 1.0  # central fraction of the short side kept before resizing

    def check(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`DataError` if the source cannot be read."""

    def infer_channels(self) -> int:
        """The channel count the images call for (``data.channels: null``); RGB unless a source knows better."""
        return 3

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """JSON-able description of the content (cache key material)."""


class FileSource(ImageSource):
    """A source made of image files on disk."""

    @abstractmethod
    def files(self) -> list[Path]:
        """Image files in a reproducible order."""

    def infer_channels(self) -> int:
        from gan_interp.data.channels import infer_channels

        return infer_channels(self.files())

    def labels(self) -> np.ndarray | None:
        """Optional integer label per file (e.g. first genre); None if unlabeled."""
        return None

    def label_names(self) -> list[str]:
        return []

    def crop_rule(self) -> CropFraction:
        """The crop the decoder applies: a fraction, or a rule from the image size to a fraction."""
        return self.crop_fraction

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "crop": self.crop_fraction, **_files_fingerprint(self.files())}


class ArraySource(ImageSource):
    """A source that renders or reads a whole uint8 array itself."""

    @abstractmethod
    def arrays(self, resolution: int, channels: int) -> dict[str, Any]:
        """Return ``{"images": uint8 [N,C,H,W], ...}``; optional ``masks`` (bool [N,K,H,W]),
        ``labels`` (int [N]), ``factors`` (dict of [N] arrays), ``concept_names``, ``label_names``."""


def _missing(kind: str, looked: list[Path], hint: str = "") -> DataError:
    where = ", ".join(str(p) for p in looked)
    return DataError(f"{kind} data not found (looked in: {where}); set data.root=/path/to/{kind}{hint}")


class FolderSource(FileSource):
    """Any folder of images (searched recursively)."""

    name = "folder"

    def __init__(
        self,
        root: str,  # folder with images (any depth; class subfolders root/<class>/ become labels)
        channels: int | None = None,  # 3 = RGB, 1 = grayscale, None = inferred (see infer_channels)
        crop_fraction: float = 1.0,
    ) -> None:
        self.root = Path(root).expanduser()
        self.channels = channels
        self.crop_fraction = crop_fraction
        self._files: list[Path] | None = None

    def check(self) -> None:
        if not self.root.is_dir() or not self.files():
            raise _missing(self.name, [self.root], " (a folder containing .jpg/.png files)")

    def files(self) -> list[Path]:
        if self._files is None:
            self._files = list_image_files(self.root) if self.root.is_dir() else []
        return self._files

    def _class_dirs(self) -> list[str] | None:
        """Each file's top-level subfolder when every file lies in one of >= 2 subfolders (class folders)."""
        parts = [p.relative_to(self.root).parts for p in self.files()]
        if not parts or any(len(q) < 2 for q in parts) or len({q[0] for q in parts}) < 2:
            return None
        return [q[0] for q in parts]

    def label_names(self) -> list[str]:
        dirs = self._class_dirs()
        return sorted(set(dirs)) if dirs else []

    def labels(self) -> np.ndarray | None:
        """Class subfolders (``root/<class>/...``) as integer labels (sorted names); None otherwise."""
        dirs = self._class_dirs()
        if dirs is None:
            return None
        index = {name: i for i, name in enumerate(self.label_names())}
        return np.array([index[d] for d in dirs], dtype=np.int64)

    def fingerprint(self) -> dict[str, Any]:
        classes = self.label_names()  # folders cached before classes were read get a fresh entry with labels
        return {**super().fingerprint(), **({"classes": classes} if classes else {})}


class ImdbPosterSource(FileSource):
    """Kaggle "Movie Genre from its Poster": ``MovieGenre.csv`` (latin-1) + ``<imdbId>.jpg`` posters.

    Without the CSV, any folder of poster images is used as is.
    """

    name = "imdb"
    POSTER_DIRS = ("posters", "SampleMoviePosters", ".")

    def __init__(
        self,
        root: str,  # dataset folder holding MovieGenre.csv and/or the poster images
        csv_name: str = "MovieGenre.csv",
        poster_dir: str | None = None,  # poster folder relative to root (default: searched)
        channels: int = 3,
    ) -> None:
        self.root = Path(root).expanduser()
        self.csv_path = self.root / csv_name
        self.poster_dir = poster_dir
        self.channels = channels
        self._files: list[Path] | None = None
        self._labels: list[str] | None = None

    def _candidate_dirs(self) -> list[Path]:
        if self.poster_dir is not None:
            return [self.root / self.poster_dir]
        return [self.root / d for d in self.POSTER_DIRS]

    def _image_dir(self) -> Path | None:
        for d in self._candidate_dirs():
            if d.is_dir() and any(p.suffix.lower() in (".jpg", ".jpeg", ".png") for p in d.iterdir()):
                return d.resolve()
        return None

    def check(self) -> None:
        if self._image_dir() is None or not self.files():
            looked = [self.csv_path, *self._candidate_dirs()]
            raise _missing(
                self.name,
                looked,
                " (MovieGenre.csv + posters/<imdbId>.jpg; fetch posters with "
                "`python -m gan_interp.data.download imdb --csv MovieGenre.csv --out <root>/posters`)",
            )

    def _read_csv(self, image_dir: Path) -> tuple[list[Path], list[str]]:
        files, genres, seen = [], [], set()
        with open(self.csv_path, encoding="latin-1", newline="") as fh:
            for row in csv.DictReader(fh):
                imdb_id = (row.get("imdbId") or "").strip()
                if not imdb_id or imdb_id in seen:  # the CSV repeats some imdbIds
                    continue
                seen.add(imdb_id)
                path = image_dir / f"{imdb_id}.jpg"
                if path.is_file():
                    files.append(path)
                    genres.append(((row.get("Genre") or "unknown").split("|")[0].strip()) or "unknown")
        return files, genres

    def files(self) -> list[Path]:
        if self._files is None:
            image_dir = self._image_dir()
            if image_dir is None:
                self._files, self._labels = [], []
            elif self.csv_path.is_file():
                self._files, self._labels = self._read_csv(image_dir)
            else:
                self._files, self._labels = list_image_files(image_dir, recursive=False), None
        return self._files

    def label_names(self) -> list[str]:
        self.files()
        return sorted(set(self._labels)) if self._labels else []

    def labels(self) -> np.ndarray | None:
        self.files()
        if not self._labels:
            return None
        index = {g: i for i, g in enumerate(self.label_names())}
        return np.array([index[g] for g in self._labels], dtype=np.int64)


class LFWSource(FileSource):
    """Labeled Faces in the Wild, deep-funneled folder (``lfw-deepfunneled/<Name>/<Name>_0001.jpg``).

    Read directly: torchvision's ``LFWPeople`` insists on the original .tgz even with images on disk.
    """

    name = "lfw"
    SUBDIRS = ("lfw-deepfunneled", "lfw_funneled", "lfw", ".")
    SUFFIXES = (".jpg", ".jpeg", ".png")
    FRAME = (250, 250)  # LFW's own image size: the face fills the centre, with background around it
    FRAME_CROP = 0.6  # central crop of a 250x250 frame that keeps the face

    def __init__(
        self,
        root: str,  # folder containing lfw-deepfunneled/ (or the person folders themselves)
        crop_fraction: float | None = None,  # None: 0.6 for 250x250 LFW frames, 1.0 (whole) for ready-cropped faces
        channels: int = 3,
    ) -> None:
        self.root = Path(root).expanduser()
        self.crop_fraction = crop_fraction
        self.channels = channels
        self._files: list[Path] | None = None

    def crop_rule(self) -> CropFraction:
        if self.crop_fraction is not None:
            return self.crop_fraction
        return lambda size: self.FRAME_CROP if tuple(size) == self.FRAME else 1.0

    def files(self) -> list[Path]:
        if self._files is None:
            self._files = []
            for sub in self.SUBDIRS:
                d = self.root / sub
                if d.is_dir():
                    found = sorted(p for p in d.glob("*/*") if p.is_file() and p.suffix.lower() in self.SUFFIXES)
                    if found:
                        self._files = found
                        break
        return self._files

    def check(self) -> None:
        if not self.files():
            raise _missing(
                self.name, [self.root / s for s in self.SUBDIRS], " (containing lfw-deepfunneled/<Name>/*.jpg or .png)"
            )


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path} is not a uint8 IDX file; re-download Fashion-MNIST or fix data.root")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def resize_uint8(images: np.ndarray, resolution: int, channels: int) -> np.ndarray:
    """Resize ``uint8 [N,C,H,W]`` to ``resolution`` and match the channel count."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.shape[1] != channels:
        x = x.repeat(1, channels, 1, 1) if x.shape[1] == 1 else x.float().mean(1, keepdim=True).round().to(torch.uint8)
    if x.shape[-1] != resolution:
        x = F.interpolate(
            x.float(), size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True
        )
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x.numpy()


class FashionMNISTSource(ArraySource):
    """Fashion-MNIST from idx files in torchvision's raw layout (``<root>/FashionMNIST/raw``)."""

    name = "fashion_mnist"
    CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

    def __init__(self, root: str, channels: int = 1, include_test: bool = True) -> None:
        self.root = Path(root).expanduser()
        self.channels = channels
        self.include_test = include_test

    def infer_channels(self) -> int:
        return 1

    def _raw_dirs(self) -> list[Path]:
        return [self.root / "FashionMNIST" / "raw", self.root / "raw", self.root]

    def _find(self, stem: str) -> Path | None:
        for d in self._raw_dirs():
            for suffix in ("", ".gz"):
                p = d / f"{stem}{suffix}"
                if p.is_file():
                    return p
        return None

    def _parts(self) -> list[str]:
        return ["train", "t10k"] if self.include_test else ["train"]

    def check(self) -> None:
        if self._find("train-images-idx3-ubyte") is None:
            raise _missing(self.name, self._raw_dirs(), " (containing FashionMNIST/raw/train-images-idx3-ubyte[.gz])")

    def fingerprint(self) -> dict[str, Any]:
        paths = [self._find(f"{p}-images-idx3-ubyte") for p in self._parts()]
        return {"name": self.name, **_files_fingerprint([p for p in paths if p is not None])}

    def arrays(self, resolution: int, channels: int) -> dict[str, Any]:
        images, labels = [], []
        for part in self._parts():
            img_path, lab_path = self._find(f"{part}-images-idx3-ubyte"), self._find(f"{part}-labels-idx1-ubyte")
            if img_path is None:
                continue
            images.append(read_idx(img_path)[:, None])
            labels.append(read_idx(lab_path).astype(np.int64) if lab_path else np.full(len(images[-1]), -1))
        return {
            "images": resize_uint8(np.concatenate(images), resolution, channels),
            "labels": np.concatenate(labels),
            "label_names": list(self.CLASSES),
        }


class SyntheticPosterSource(ArraySource):
    """Procedural posters with per-pixel concept masks and latent factors (the embedded default)."""

    name = "synthetic_posters"

    def __init__(self, n: int = 2048, seed: int = 0, channels: int = 3) -> None:
        if n < 1:
            from gan_interp.errors import ConfigError

            raise ConfigError(f"data.source.n={n} must be >= 1")
        self.n, self.seed, self.channels = n, seed, channels

    def fingerprint(self) -> dict[str, Any]:
        from gan_interp.data import synthetic_posters

        return {"name": self.name, "n": self.n, "seed": self.seed, "version": getattr(synthetic_posters, "VERSION", 1)}

    def arrays(self, resolution: int, channels: int) -> dict[str, Any]:
        from gan_interp.data.synthetic_posters import render_posters

        batch = render_posters(self.n, resolution=resolution, seed=self.seed)
        return {
            "images": resize_uint8(batch.images, resolution, channels),
            "masks": batch.masks,
            "labels": np.asarray(batch.factors.get("genre", np.zeros(self.n)), dtype=np.int64),
            "factors": batch.factors,
            "concept_names": list(batch.concept_names),
            "label_names": list(batch.genre_names),
        }


class FakeSource(ArraySource):
    """Tiny random smooth images for tests (no files, instant)."""

    name = "fake"

    def __init__(self, n: int = 64, seed: int = 0, channels: int = 3) -> None:
        self.n, self.seed, self.channels = n, seed, channels

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n, "seed": self.seed}

    def arrays(self, resolution: int, channels: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(self.seed)
        coarse = torch.rand(self.n, channels, 4, 4, generator=g)
        x = F.interpolate(coarse, size=(resolution, resolution), mode="bilinear", align_corners=False)
        return {"images": (x * 255).round().to(torch.uint8).numpy(), "labels": np.zeros(self.n, dtype=np.int64)}
