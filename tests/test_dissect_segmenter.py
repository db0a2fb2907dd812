"""Concept segmenters: colour concepts (known answers), the cached poster segmenter, the factory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_interp.data import GANDataModule
from gan_interp.data.sources import FakeSource, SyntheticPosterSource
from gan_interp.dissect import segmenter as segmod
from gan_interp.dissect.segmenter import ColourSegmenter, NetSegmenter, build_segmenter, segmentation_quality
from gan_interp.errors import ConfigError


def test_colour_segmenter_known_answers():
    img = torch.full((1, 3, 8, 8), -1.0)  # black
    img[0, :, :4, :4] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]  # red
    img[0, :, :4, 4:] = torch.tensor([-1.0, -1.0, 1.0])[:, None, None]  # blue
    img[0, :, 4:, 4:] = 1.0  # white
    img[0, :, 4:, :2] = 0.0  # mid gray
    seg = ColourSegmenter(texture=True)
    m = seg(img)[0]
    name = {n: i for i, n in enumerate(seg.concept_names)}
    assert m[name["red"], :4, :4].all() and m[name["blue"], :4, 4:].all() and m[name["white"], 4:, 4:].all()
    assert m[name["gray"], 4:, :2].all() and m[name["black"], 4:, 2:4].all()
    colours = m[: name["texture"]]
    assert (colours.sum(0) == 1).all()  # colour concepts partition the pixels
    assert not m[name["texture"], 1, 1] and m[name["texture"], 3, 3]  # flat inside, contrast at the edges
    gray = seg(torch.zeros(2, 1, 4, 4))  # one-channel images work too
    assert gray[:, name["gray"]].all()


@pytest.fixture
def posters(tmp_path):
    return GANDataModule(
        SyntheticPosterSource(n=160),
        resolution=32,
        cache_dir=str(tmp_path / "cache"),
        val_fraction=0.2,
        test_fraction=0.0,
    )


def test_poster_segmenter_learns_is_cached_and_reloaded(posters, tmp_path, monkeypatch):
    seg = build_segmenter("trained", posters, tmp_path / "cache", steps=60, width=8, seed=0)
    files = list((tmp_path / "cache" / "segmenters").glob("*.pt"))
    assert len(files) == 1 and seg.concept_names == posters.concept_names
    val = seg.metrics["val"]
    masks = torch.from_numpy(np.ascontiguousarray(posters.masks("val")))
    majority = masks.float().mean((0, 2, 3)).max().item()  # always answering the commonest concept
    assert val["pixel_accuracy"] > majority + 0.1
    # second call: loaded from the cache (training would raise), identical predictions
    monkeypatch.setattr(segmod, "train_segnet", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = build_segmenter("auto", posters, tmp_path / "cache", steps=60, width=8, seed=0)
    x, x_masks = posters.images_with_masks("val", 8)  # a seeded sample and the masks of those images
    assert isinstance(again, NetSegmenter) and torch.equal(again(x), seg(x))
    assert again.metrics["val"]["pixel_accuracy"] == pytest.approx(val["pixel_accuracy"])
    q = segmentation_quality(again, x, torch.from_numpy(x_masks))
    assert 0.0 <= q["pixel_accuracy"] <= 1.0 and set(q["concept_iou"]) == set(posters.concept_names)


def test_factory_falls_back_to_colours_and_reports_bad_specs(tmp_path):
    fake = GANDataModule(FakeSource(n=16), resolution=32, cache_dir=str(tmp_path / "cache"))
    assert isinstance(build_segmenter("auto", fake), ColourSegmenter)
    assert isinstance(build_segmenter("colour"), ColourSegmenter)
    with pytest.raises(ConfigError, match="no concept masks"):
        build_segmenter("trained", fake, tmp_path)
    with pytest.raises(ConfigError, match="_target_"):
        build_segmenter({"texture": False})
    with pytest.raises(ConfigError, match="concept_names"):
        build_segmenter({"_target_": "torch.nn.Identity"})


def test_grayscale_data_gets_no_hue_concepts(tmp_path):
    gray = GANDataModule(FakeSource(n=16, channels=1), resolution=32, channels=1, cache_dir=str(tmp_path / "cache"))
    seg = build_segmenter("auto", gray)
    assert seg.concept_names == ["black", "gray", "white", "texture"]
    assert build_segmenter("colour", gray).concept_names == seg.concept_names
    x = torch.linspace(-1, 1, 32).repeat(2, 1, 32, 1)  # a horizontal ramp: black, gray, white columns
    out = seg(x)
    assert out.shape == (2, 4, 32, 32) and torch.equal(out[:, :3].sum(1), torch.ones(2, 32, 32, dtype=torch.long))
    assert out[0, 0, 0, 0] and out[0, 1, 0, 16] and out[0, 2, 0, 31]
    rgb = build_segmenter("auto", GANDataModule(FakeSource(n=16), resolution=32, cache_dir=str(tmp_path / "c2")))
    assert "red" in rgb.concept_names and "red" not in ColourSegmenter(hues=False).concept_names


def test_grayscale_folder_loaded_as_rgb_gets_no_hue_concepts_and_a_colour_folder_does(tmp_path):
    from PIL import Image

    from gan_interp.data.sources import FolderSource

    for name, colour in (("gray", lambda i: (60 + 20 * i,) * 3), ("colour", lambda i: (200, 40 + 20 * i, 30))):
        root = tmp_path / name
        root.mkdir()
        for i in range(6):
            Image.new("RGB", (16, 16), colour(i)).save(root / f"{i}.png")
    gray = GANDataModule(
        FolderSource(str(tmp_path / "gray"), channels=3),
        resolution=16,
        channels=3,
        cache_dir=str(tmp_path / "cache"),
        val_fraction=0.2,
        test_fraction=0.0,
    )
    colour = GANDataModule(
        FolderSource(str(tmp_path / "colour"), channels=3),
        resolution=16,
        channels=3,
        cache_dir=str(tmp_path / "cache"),
        val_fraction=0.2,
        test_fraction=0.0,
    )
    assert gray.channels == 3 and segmod.data_has_hues(gray) is False and segmod.data_has_hues(colour) is True
    assert build_segmenter("auto", gray).concept_names == ["black", "gray", "white", "texture"]
    assert build_segmenter("colour", gray).concept_names == ["black", "gray", "white", "texture"]
    assert "red" in build_segmenter("auto", colour).concept_names
