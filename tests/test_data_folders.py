"""Real image folders (issue 14.5): class-stratified probe samples, inferred channels, tiny datasets."""

from __future__ import annotations

import logging
import zlib

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from gan_interp.data import GANDataModule
from gan_interp.data.channels import infer_channels, resolve_channels
from gan_interp.data.datamodule import fit_batch_size
from gan_interp.data.sampling import PROBE_SAMPLE_SALT, probe_order, probe_rng
from gan_interp.data.sources import FolderSource, LFWSource, SyntheticPosterSource
from gan_interp.errors import ConfigError
from gan_interp.paths import config_dir


def write_class_folder(root, n_classes=5, per_class=8, size=20, mode="L"):
    """Class-sorted PNGs in ``root/<class>/``: class ``c`` is a flat image of value ``40 * c + 20``."""
    for c in range(n_classes):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(per_class):
            value = 40 * c + 20
            colour = value if mode == "L" else (value, 255 - value, (37 * i) % 256)
            Image.new(mode, (size, size), colour).save(root / f"class_{c}" / f"{i:03d}.png")
    return root


def _dm(source, tmp_path, **kw):
    kw.setdefault("resolution", 16)
    kw.setdefault("batch_size", 4)
    return GANDataModule(source, cache_dir=str(tmp_path / "cache"), **kw)


def test_probe_order_known_answer_and_prefix_strata():
    labels = np.repeat(np.arange(4), 5)  # class-sorted, like a folder of class subfolders
    order = probe_order(20, labels, probe_rng(0, "train"))
    assert sorted(order.tolist()) == list(range(20))  # a permutation
    assert sorted(labels[order[:4]].tolist()) == [0, 1, 2, 3]  # the opening round: one of each class
    assert all(np.bincount(labels[order[: 4 * k]], minlength=4).tolist() == [k] * 4 for k in range(1, 6))
    again = probe_order(20, labels, probe_rng(0, "train"))
    assert order.tolist() == again.tolist()
    assert order.tolist() != probe_order(20, labels, probe_rng(0, "val")).tolist()
    plain = probe_order(10, None, probe_rng(0, "train"))  # unlabelled: a seeded permutation
    key = [0, zlib.crc32(b"train"), PROBE_SAMPLE_SALT]  # split seed, split name, salt: not the training RNG
    assert plain.tolist() == np.random.default_rng(key).permutation(10).tolist()


def test_folder_class_subfolders_are_labels(tmp_path):
    src = FolderSource(str(write_class_folder(tmp_path / "digits", n_classes=3, per_class=2)), channels=1)
    assert src.label_names() == ["class_0", "class_1", "class_2"]
    assert src.labels().tolist() == [0, 0, 1, 1, 2, 2]
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("L", (8, 8), 0).save(flat / "a.png")
    assert FolderSource(str(flat)).labels() is None and "classes" not in FolderSource(str(flat)).fingerprint()


def test_stratified_probe_sample_covers_every_class(tmp_path):
    root = write_class_folder(tmp_path / "digits", n_classes=5, per_class=8)
    dm = _dm(FolderSource(str(root), channels=1), tmp_path, channels=1, val_fraction=0.1, test_fraction=0.1)
    dm.setup()
    imgs = dm.images("train", 5)
    values = sorted({round((float(x.mean()) + 1) * 127.5) for x in imgs})
    assert values == [20, 60, 100, 140, 180]  # one image of each class, not five '0's
    torch.manual_seed(123)  # the training RNG does not move the sample
    again = _dm(FolderSource(str(root), channels=1), tmp_path, channels=1, val_fraction=0.1, test_fraction=0.1)
    assert torch.equal(again.images("train", 5), imgs)
    assert torch.equal(dm.images("train", 10)[:5], imgs)  # bigger samples extend smaller ones
    assert dm.images("train").shape[0] == len(dm.split["train"])  # n=None: the whole split


def test_probe_sample_masks_belong_to_the_sampled_images(tmp_path):
    dm = _dm(SyntheticPosterSource(n=40, seed=1), tmp_path, resolution=32, val_fraction=0.1, test_fraction=0.1)
    imgs, masks = dm.images_with_masks("train", 6)
    pos = dm.sample_positions("train", 6)
    assert pos.tolist() != list(range(6))  # a sample, not the first rows
    assert torch.equal(imgs, dm.dataset("train").__getitems__(pos.tolist())["image"])
    assert np.array_equal(masks, dm.masks("train")[pos])


def test_grayscale_folder_trains_one_channel_with_a_notice(make_cfg, tmp_path, caplog):
    root = write_class_folder(tmp_path / "digits", n_classes=2, per_class=3)
    cfg = make_cfg(["data=folder", f"data.root={root}", "data.resolution=32", "model=dcgan"])
    with caplog.at_level(logging.INFO, logger="gan_interp.data.channels"):
        assert resolve_channels(cfg) == 1
    assert cfg.data.channels == 1 and cfg.model.channels == 1  # the model follows ${data.channels}
    notices = [r.getMessage() for r in caplog.records if r.name == "gan_interp.data.channels"]
    assert len(notices) == 1 and "data.channels=1" in notices[0] and "data.channels=3 to override" in notices[0]
    dm = instantiate(cfg.data)
    dm.setup()
    assert dm.data.images.shape[1] == 1 and f"-{32}px-" in dm.data.path.name


def test_rgb_folder_and_explicit_channels(make_cfg, tmp_path):
    rgb = write_class_folder(tmp_path / "rgb", n_classes=2, per_class=2, mode="RGB")
    gray = write_class_folder(tmp_path / "gray", n_classes=2, per_class=2)
    assert resolve_channels(make_cfg(["data=folder", f"data.root={rgb}"])) == 3
    explicit = make_cfg(["data=folder", f"data.root={gray}", "data.channels=3"])
    assert resolve_channels(explicit) == 3 and explicit.model.channels == 3  # an explicit count wins
    with pytest.raises(ConfigError, match="data.channels=2 must be 1"):
        resolve_channels(make_cfg(["data=folder", f"data.root={gray}", "data.channels=2"]))
    # colour files whose bands are equal are grayscale too; the datamodule infers when built directly
    flat_rgb = tmp_path / "flat_rgb"
    flat_rgb.mkdir()
    Image.new("RGB", (8, 8), (90, 90, 90)).save(flat_rgb / "a.png")
    assert infer_channels([flat_rgb / "a.png"]) == 1
    assert _dm(FolderSource(str(gray)), tmp_path, channels=None).channels == 1


def test_lfw_reads_jpg_and_png_and_keeps_ready_cropped_faces_whole(tmp_path):
    person = tmp_path / "lfw" / "lfw-deepfunneled" / "Ann_A"
    person.mkdir(parents=True)
    frame = Image.new("RGB", (250, 250), (0, 0, 255))  # an LFW frame: blue background, red face in the centre
    frame.paste((255, 0, 0), (45, 45, 205, 205))  # 160 px: fills the 0.6 crop (150 px)
    frame.save(person / "Ann_A_0001.jpg")
    face = Image.new("RGB", (80, 80), (0, 0, 255))  # a ready-cropped face: its border must survive
    face.paste((255, 0, 0), (20, 20, 60, 60))
    face.save(person / "Ann_A_0002.png")
    src = LFWSource(str(tmp_path / "lfw"))
    assert [p.name for p in src.files()] == ["Ann_A_0001.jpg", "Ann_A_0002.png"]
    dm = _dm(src, tmp_path, resolution=32, val_fraction=0.0, test_fraction=0.0)
    dm.setup()
    cropped, whole = dm.data.images[0], dm.data.images[1]
    assert cropped[0].mean() > 200 and cropped[2, 0, 0] < 60  # default crop of the frame: all face
    assert whole[2, 0, 0] > 200 and whole[0, 16, 16] > 200  # whole image: blue border and red centre
    assert OmegaConf.load(config_dir() / "data" / "lfw.yaml").source.crop_fraction is None


def test_tiny_dataset_warns_once_and_lowers_the_batch(tmp_path, caplog):
    assert [fit_batch_size(n, 16) for n in (48, 47, 10, 4, 1)] == [16, 15, 3, 2, 1]  # known answers
    root = write_class_folder(tmp_path / "tiny", n_classes=2, per_class=5, mode="RGB")
    dm = _dm(FolderSource(str(root)), tmp_path, batch_size=64, val_fraction=0.0, test_fraction=0.0)
    with caplog.at_level(logging.WARNING, logger="gan_interp.data.datamodule"):
        dm.setup()
        dm.setup()
        loader = dm.train_dataloader()
    warnings = [r.getMessage() for r in caplog.records if "too large" in r.getMessage()]
    assert len(warnings) == 1 and "data.batch_size=64" in warnings[0] and "using 3" in warnings[0]
    assert dm.batch_size == 3 and len(loader) == 3  # 10 images: 3 steps of 3, not one step
    roomy = _dm(FolderSource(str(root)), tmp_path, batch_size=3, val_fraction=0.0, test_fraction=0.0)
    roomy.setup()
    assert roomy.batch_size == 3  # already a few steps per epoch: unchanged
