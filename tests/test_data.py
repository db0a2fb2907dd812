"""GANDataModule: sources, decode-once cache, corrupt files, persisted seeded splits."""

from __future__ import annotations

import csv
import gzip
import json
import logging
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from gan_interp.data import GANDataModule
from gan_interp.data import cache as cache_mod
from gan_interp.data.decode import decode_image_file
from gan_interp.data.sources import (
    FakeSource,
    FashionMNISTSource,
    FolderSource,
    ImdbPosterSource,
    LFWSource,
    SyntheticPosterSource,
)
from gan_interp.errors import ConfigError, DataError


def _jpeg(path, size=(182, 268), color=(200, 30, 30), mode="RGB"):
    img = Image.new("RGB", size, color)
    img = img.convert(mode) if mode != "RGB" else img
    img.save(path, format="JPEG", quality=90)


def _dm(source, tmp_path, **kw):
    kw.setdefault("resolution", 32)
    kw.setdefault("batch_size", 4)
    return GANDataModule(source, cache_dir=str(tmp_path / "cache"), **kw)


@pytest.fixture
def messy_folder(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(6):
        _jpeg(root / f"ok_{i}.jpg", color=(40 * i, 10, 200))
    _jpeg(root / "gray.jpg", mode="L")
    _jpeg(root / "cmyk.jpg", mode="CMYK")
    good = (root / "ok_0.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])  # passes verify(), fails load()
    (root / "not_an_image.png").write_bytes(b"hello, I am text")
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("ignored: not an image suffix")
    return root


def test_truncated_jpeg_is_rejected_although_verify_passes(messy_folder):
    with Image.open(messy_folder / "truncated.jpg") as img:
        img.verify()  # the pitfall: this does not raise
    from gan_interp.data.decode import DecodeFailure

    with pytest.raises(DecodeFailure):
        decode_image_file(messy_folder / "truncated.jpg", 32)


def test_corrupt_files_are_skipped_with_a_count(messy_folder, tmp_path, caplog):
    dm = _dm(FolderSource(str(messy_folder)), tmp_path)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert len(dm.data) == 8  # 6 RGB + gray + CMYK converted
    assert len(dm.data.meta["skipped"]) == 3
    assert any("skipped 3 unreadable" in r.getMessage() for r in caplog.records)
    assert dm.data.images.shape[1:] == (3, 32, 32) and dm.data.images.dtype == np.uint8
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].dtype == torch.float32
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1


def test_aspect_center_crop_vs_letterbox(tmp_path):
    img = tmp_path / "poster.jpg"
    Image.new("RGB", (100, 200), (255, 255, 255)).save(img)
    crop = decode_image_file(img, 32, aspect="center_crop")
    box = decode_image_file(img, 32, aspect="letterbox")
    assert crop.shape == box.shape == (3, 32, 32)
    assert crop.min() > 240  # all poster
    assert box[:, :, :4].max() < 10 and box[:, :, 14:18].min() > 240  # black side bars, poster in the middle
    with pytest.raises(ConfigError, match="data.aspect='stretch'"):
        GANDataModule(FakeSource(), aspect="stretch")


def test_cache_is_built_once_and_reused(tmp_path, monkeypatch, messy_folder):
    dm = _dm(FolderSource(str(messy_folder)), tmp_path)
    dm.prepare_data()
    calls = []
    monkeypatch.setattr(cache_mod, "decode_image_file", lambda *a, **k: calls.append(a))
    dm2 = _dm(FolderSource(str(messy_folder)), tmp_path)
    dm2.setup()
    assert calls == [] and len(dm2.data) == 8
    entries = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()
    # a different resolution is a different entry
    monkeypatch.undo()
    _dm(FolderSource(str(messy_folder)), tmp_path, resolution=64).prepare_data()
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 2


def test_large_cache_is_memory_mapped(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "MEMMAP_THRESHOLD_BYTES", 1)
    dm = _dm(FakeSource(n=40), tmp_path)
    dm.setup()
    assert isinstance(dm.data.images, np.memmap) or isinstance(dm.data.images.base, np.memmap)
    assert next(iter(dm.train_dataloader()))["image"].shape == (4, 3, 32, 32)


def test_split_is_seeded_disjoint_persisted_and_reused(tmp_path):
    dm = _dm(FakeSource(n=100), tmp_path, val_fraction=0.1, test_fraction=0.2, split_seed=7)
    dm.setup()
    s = dm.split
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (70, 10, 20)
    assert sorted(s["train"] + s["val"] + s["test"]) == list(range(100))
    split_files = list(dm.data.path.glob("split-seed7-*.json"))
    assert len(split_files) == 1 and json.loads(split_files[0].read_text()) == s
    again = _dm(FakeSource(n=100), tmp_path, val_fraction=0.1, test_fraction=0.2, split_seed=7)
    again.setup()
    assert again.split == s
    other = _dm(FakeSource(n=100), tmp_path, val_fraction=0.1, test_fraction=0.2, split_seed=8)
    other.setup()
    assert other.split["val"] != s["val"]
    saved = dm.save_split(tmp_path / "run")
    assert json.loads(saved.read_text())["val"] == s["val"]
    # indices in batches are cache rows of the train split
    rows = torch.cat([b["index"] for b in dm.train_dataloader()])
    assert set(rows.tolist()) <= set(s["train"])


def test_split_leaving_no_training_data_is_a_config_error(tmp_path):
    dm = _dm(FakeSource(n=10), tmp_path, val_fraction=0.6, test_fraction=0.39)
    with pytest.raises(ConfigError, match="leave no training images"):
        dm.setup()


def _write_movie_csv(path, rows):
    with open(path, "w", encoding="latin-1", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["imdbId", "Imdb Link", "Title", "IMDB Score", "Genre", "Poster"])
        w.writerows(rows)


def test_imdb_layout_latin1_csv_duplicates_and_missing_posters(tmp_path):
    root = tmp_path / "imdb"
    (root / "posters").mkdir(parents=True)
    for i, mode in [(1, "RGB"), (2, "L"), (3, "CMYK")]:
        _jpeg(root / "posters" / f"{i}.jpg", mode=mode)
    _write_movie_csv(
        root / "MovieGenre.csv",
        [
            [1, "x", "Amélie (2001)", 8.3, "Comedy|Romance", "http://x/1.jpg"],
            [1, "x", "Amélie (2001)", 8.3, "Comedy|Romance", "http://x/1.jpg"],  # duplicate id
            [2, "x", "Drama One", 7.0, "Drama", "http://x/2.jpg"],
            [3, "x", "Scary", 5.0, "Horror|Drama", "http://x/3.jpg"],
            [4, "x", "No poster on disk", 5.0, "Action", "http://x/4.jpg"],
        ],
    )
    src = ImdbPosterSource(str(root))
    src.check()
    assert [p.name for p in src.files()] == ["1.jpg", "2.jpg", "3.jpg"]
    assert src.label_names() == ["Comedy", "Drama", "Horror"]
    assert src.labels().tolist() == [0, 1, 2]
    dm = _dm(src, tmp_path, aspect="letterbox", val_fraction=0.0, test_fraction=0.0)
    dm.setup()
    assert len(dm.data) == 3 and dm.data.labels.tolist() == [0, 1, 2]


def test_imdb_plain_folder_without_csv(tmp_path):
    root = tmp_path / "posters_only"
    root.mkdir()
    for i in range(3):
        _jpeg(root / f"{i}.jpg")
    assert len(ImdbPosterSource(str(root)).files()) == 3


@pytest.mark.parametrize(
    "source",
    [
        lambda p: ImdbPosterSource(str(p)),
        lambda p: LFWSource(str(p)),
        lambda p: FolderSource(str(p)),
        lambda p: FashionMNISTSource(str(p)),
    ],
    ids=["imdb", "lfw", "folder", "fashion_mnist"],
)
def test_missing_data_is_one_clear_line(tmp_path, source):
    with pytest.raises(DataError) as err:
        source(tmp_path / "nowhere").check()
    msg = str(err.value)
    assert "\n" not in msg and "data.root=" in msg and str(tmp_path / "nowhere") in msg


def test_lfw_deep_funneled_folder(tmp_path):
    for name in ("Ann_A", "Bob_B"):
        d = tmp_path / "lfw" / "lfw-deepfunneled" / name
        d.mkdir(parents=True)
        for i in range(2):
            img = Image.new("RGB", (250, 250), (0, 0, 255))
            img.paste((255, 0, 0), (75, 75, 175, 175))  # the "face" in the centre
            img.save(d / f"{name}_{i + 1:04d}.jpg")
    src = LFWSource(str(tmp_path / "lfw"), crop_fraction=0.4)
    dm = _dm(src, tmp_path, val_fraction=0.0, test_fraction=0.0)
    dm.setup()
    assert len(dm.data) == 4
    assert dm.data.images[0, 0].mean() > 200 and dm.data.images[0, 2].mean() < 60  # crop kept only the centre


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_raw_layout(tmp_path):
    raw = tmp_path / "fm" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.zeros((5, 28, 28), np.uint8)
    imgs[:, 10:18, 10:18] = 255
    _write_idx(raw / "train-images-idx3-ubyte.gz", imgs)
    _write_idx(raw / "train-labels-idx1-ubyte.gz", np.arange(5))
    src = FashionMNISTSource(str(tmp_path / "fm"), include_test=False)
    src.check()
    dm = _dm(src, tmp_path, channels=1, val_fraction=0.0, test_fraction=0.0)
    dm.setup()
    assert dm.data.images.shape == (5, 1, 32, 32)
    assert dm.data.labels.tolist() == [0, 1, 2, 3, 4]
    assert dm.data.images[0, 0, 16, 16] > 200 and dm.data.images[0, 0, 0, 0] == 0


def test_synthetic_posters_carry_masks_and_concepts(tmp_path):
    dm = _dm(SyntheticPosterSource(n=20, seed=3), tmp_path, val_fraction=0.1, test_fraction=0.1)
    dm.setup()
    assert "figure" in dm.concept_names
    masks = dm.masks("train")
    assert masks.shape == (16, len(dm.concept_names), 32, 32) and masks.dtype == bool
    assert dm.data.factors["genre"].shape == (20,)
    imgs = dm.images("train", 5)
    assert imgs.shape == (5, 3, 32, 32)
