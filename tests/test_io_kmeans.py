"""Known answers for the shared helpers: atomic writes, JSON conversion, k-means."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

from gan_interp import io as gan_io
from gan_interp.kmeans import kmeans, kmeans_pp, lloyd, squared_distances


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_write_json_replaces_atomically_and_converts(tmp_path):
    dest = tmp_path / "sub" / "a.json"
    gan_io.write_json({"x": torch.tensor(2.5), "y": np.float32(1.5), "z": [math.nan, np.int64(3)], "p": tmp_path}, dest)
    assert json.loads(dest.read_text()) == {"x": 2.5, "y": 1.5, "z": [None, 3], "p": str(tmp_path)}
    gan_io.write_text(dest, "new")
    assert dest.read_text() == "new" and _siblings(dest) == ["a.json"]  # no temp file left


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    dest = tmp_path / "model.pt"
    gan_io.write_bytes(dest, b"old")

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gan_io.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        gan_io.torch_save({"w": torch.ones(3)}, dest)
    assert dest.read_bytes() == b"old" and _siblings(dest) == ["model.pt"]


def test_atomic_directory_keeps_a_concurrent_winner(tmp_path):
    dest = tmp_path / "entry"
    with gan_io.atomic_path(dest, directory=True) as tmp:
        (tmp / "meta.json").write_text("mine")
        dest.mkdir()  # another process finishes the same entry first
        (dest / "meta.json").write_text("theirs")
    assert (dest / "meta.json").read_text() == "theirs" and _siblings(dest) == ["entry"]
    with gan_io.atomic_path(tmp_path / "fresh", directory=True) as tmp:
        (tmp / "f").write_text("1")
    assert (tmp_path / "fresh" / "f").read_text() == "1"
    assert not any(gan_io.TMP_MARK in n for n in os.listdir(tmp_path))


def test_jsonable_named_tuples_and_nesting():
    class Pair(NamedTuple):
        mean: float
        sd: float

    got = gan_io.jsonable({1: (Pair(1.0, math.inf), np.array([[1, 2]]), np.bool_(True)), "t": torch.zeros(2)})
    assert got == {"1": [{"mean": 1.0, "sd": None}, [[1, 2]], True], "t": [0.0, 0.0]}


def test_save_png_has_save_images_pixels_and_keeps_the_caption(tmp_path):
    from PIL import Image
    from torchvision.utils import save_image

    for shape in [(3, 5, 7), (1, 4, 4)]:  # RGB, and 1 channel (saved as grey RGB, as save_image does)
        img = torch.rand(*shape)
        save_image(img, tmp_path / "ref.png")
        dest = gan_io.save_png(img, tmp_path / "out" / "ours.png", caption="rows: members ± 1 std")
        with Image.open(tmp_path / "ref.png") as ref, Image.open(dest) as ours:
            assert np.array_equal(np.asarray(ref), np.asarray(ours)) and ours.size == (shape[2], shape[1])
        assert gan_io.png_caption(dest) == "rows: members ± 1 std"
        assert _siblings(dest) == ["ours.png"]  # written atomically: no temp file left
    assert gan_io.png_caption(tmp_path / "ref.png") == "" and gan_io.png_caption(tmp_path / "missing.png") == ""


def test_kmeans_pp_seeds_spread_and_degenerate_rows():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.1], [10.0, 10.0], [10.0, 10.1], [-10.0, 5.0]])
    idx = kmeans_pp(x, 3, torch.Generator().manual_seed(0))
    assert sorted({int(i) // 2 for i in idx}) == [0, 1, 2]  # one seed from each well-separated group
    same = torch.zeros(4, 2)
    first, *rest = kmeans_pp(same, 3, torch.Generator().manual_seed(0)).tolist()
    assert rest == [i for i in range(4) if i != first][:2]  # the first unused rows, in order
    assert len(set(kmeans_pp(same, 4, torch.Generator().manual_seed(1)).tolist())) == 4  # distinct rows, no draw
    with pytest.raises(ValueError, match="k=5, n=4"):
        kmeans_pp(same, 5)


def test_lloyd_and_kmeans_known_answer():
    x = torch.tensor([[0.0], [0.1], [10.0], [10.2]])
    cent = kmeans(x, 2, seed=0)
    assert sorted(cent[:, 0].tolist()) == pytest.approx([0.05, 10.1])
    assert lloyd(x, torch.tensor([[0.0], [100.0]]), 1)[:, 0].tolist() == pytest.approx([5.075, 100.0])  # empty stays
    assert squared_distances(torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2)).item() == 25.0
