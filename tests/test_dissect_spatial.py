"""Spatial insertion / ablation, the context table and the paint command (issue 17.1), on planted generators.

``PlantedSceneGAN`` (gan_interp.dissect.planted) is GAN Dissection's door-on-a-wall in miniature: its 8x8
layer ``feat`` has units door, wall, sky and an unrelated wave; the image is blue sky above a latent horizon
(2, 4 or 6 rows), gray wall below, red where the door unit *and* the wall unit are on. Known answers: a
door inserted in a region appears exactly where the region held wall, never where it held sky, and nothing
changes outside the region.
"""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from gan_interp.dissect import paint as paint_mod
from gan_interp.dissect.dissection import dissect
from gan_interp.dissect.planted import PlantedSceneGAN
from gan_interp.dissect.segmenter import ColourSegmenter
from gan_interp.dissect.spatial import (
    cells_footprint,
    check_box,
    context_table,
    feature_region,
    region_effect,
    spatial_report,
    tile_boxes,
)
from gan_interp.errors import ConfigError
from gan_interp.probes.runner import run_probes

SEG = ColourSegmenter(texture=False)
RED, GRAY, BLUE = (SEG.concept_names.index(c) for c in ("red", "gray", "blue"))
BOTTOM = (0, 24, 32, 32)  # the two bottom cell rows: always wall (the horizon is at most 6 rows down)


def test_boxes_map_to_feature_cells_and_back():
    assert check_box([0, 24, 32, 32], 32) == BOTTOM
    for bad in ([0, 0, 0, 4], [4, 0, 2, 8], [0, 0, 33, 4], [0, 0, 4], "abc", [0.5, 0, 4, 4]):
        with pytest.raises(ConfigError, match="box="):
            check_box(bad, 32)
    region = feature_region((8, 8, 24, 24), 32, (8, 8))  # cell centres 2, 6, 10, ... -> cells 2..5
    assert region.sum() == 16 and region[2:6, 2:6].all()
    tiny = feature_region((13, 13, 14, 14), 32, (8, 8))  # smaller than a cell: the cell holding its centre
    assert tiny.sum() == 1 and tiny[3, 3]
    foot = cells_footprint(region, 32)
    assert foot.sum() == 256 and foot[8:24, 8:24].all()
    boxes = tile_boxes(32, 8, 8, 4)
    cover = torch.zeros(8, 8, dtype=torch.int64)
    for b in boxes:
        cover += feature_region(b, 32, (8, 8)).long()
    assert len(boxes) == 16 and (cover == 1).all()  # the tiles partition the feature map
    with pytest.raises(ConfigError, match="tiles=9"):
        tile_boxes(32, 8, 8, 9)


def test_inserting_a_door_paints_only_inside_the_region_and_ablating_the_wall_removes_it():
    scene = PlantedSceneGAN()
    ins = region_effect(scene, "feat", [0], SEG, RED, BOTTOM, 1.0, n_samples=32)
    assert ins["cells"] == 16 and ins["inside_after"] == 1.0 and ins["inside_before"] < 0.5
    assert ins["outside_before"] == ins["outside_after"] == 0.0 and ins["outside_ace"] == 0.0
    abl = region_effect(scene, "feat", [1], SEG, GRAY, BOTTOM, 0.0, n_samples=32)
    assert abl["inside_after"] == 0.0 and abl["inside_ace"] < -0.5 and abl["outside_ace"] == 0.0


def test_context_table_a_door_appears_on_wall_never_on_sky():
    rows = {r["context"]: r for r in context_table(PlantedSceneGAN(), "feat", [0], SEG, RED, 1.0, 4, 32)}
    assert set(rows) == {"gray", "blue", "red"}  # wall, sky, and tiles that already held a door
    assert rows["gray"]["inside_before"] == 0.0 and rows["gray"]["inside_after"] == 1.0
    assert rows["blue"]["inside_after"] == 0.0 and rows["blue"]["inside_ace"] == 0.0
    assert rows["red"]["inside_before"] == rows["red"]["inside_after"] == 1.0
    assert all(r["outside_ace"] == 0.0 for r in rows.values())
    assert sum(r["n"] for r in rows.values()) == 32 * 16


def test_dissection_finds_the_door_unit_and_the_report_has_a_figure():
    scene = PlantedSceneGAN()
    res = dissect(scene, SEG, "feat", n_samples=64, batch_size=32)
    assert res.units_for("red", 1, "iqr").tolist() == [0] and res.units_for("red", 1).tolist() == [0]
    k, iou = res.best("iqr")
    assert k.tolist()[:3] == [RED, GRAY, BLUE] and float(iou[0]) > 0.9  # bilinear 8 -> 32 px edges cost a little
    rep = spatial_report(scene, res, SEG, "red", BOTTOM, n_units=1, tiles=4, n_samples=16, n_figure=3)
    assert rep["units"] == [0] and rep["insert"]["inside_after"] == 1.0 and rep["ablate"]["inside_after"] == 0.0
    gray_ctx = {r["context"]: r for r in rep["insert"]["contexts"]}["gray"]
    assert gray_ctx["inside_after"] == 1.0
    fig = rep["figure"]
    assert fig.ndim == 3 and fig.shape[0] == 3 and float(fig.min()) >= 0.0 and float(fig.max()) <= 1.0


def test_probe_option_writes_insertion_json_figure_and_readings(tmp_path):
    cfg = {
        "dissection": {
            "n_samples": 64,
            "batch_size": 32,
            "segmenter": {"_target_": "gan_interp.dissect.segmenter.ColourSegmenter", "texture": False},
            "strip_units": 2,
            "strip_k": 2,
            "ace_concepts": 0,
            "insert_concepts": 3,
            "insert_units": 1,
            "insert_box": [0, 24, 32, 32],
            "insert_samples": 16,
        }
    }
    results = run_probes(PlantedSceneGAN(), None, cfg, tmp_path / "probes", epoch=0, strict=True)
    out = tmp_path / "probes" / "dissection"
    reports = {r["concept"]: r for r in json.loads((out / "insertion.json").read_text())}
    assert set(reports) == {"red", "gray", "blue"}
    assert reports["red"]["units"] == [0] and reports["red"]["insert"]["inside_after"] == 1.0
    assert (out / "insertion_red.png").is_file()
    assert results["dissection"]["insertion"]["red"]["insert"]["outside_ace"] == 0.0
    bad = {"dissection": {**cfg["dissection"], "insert_box": [0, 0, 40, 8]}}
    with pytest.raises(ConfigError, match="box="):
        run_probes(PlantedSceneGAN(), None, bad, tmp_path / "bad", epoch=0, strict=True)


def test_paint_known_answer_on_the_planted_scene_and_its_files(tmp_path):
    painted = paint_mod.paint(PlantedSceneGAN(), SEG, "red", [0, 24, 32, 32], n=4, n_units=1, dissect_samples=64)
    rep = painted["report"]
    assert rep["units"] == [0] and rep["inside_after"] == 1.0 and rep["outside_ace"] == 0.0
    after = painted["after"]
    assert (after[:, 0, 24:] == 1).all() and (after[:, 1:, 24:] == -1).all()  # red everywhere in the box
    assert torch.equal(after[:, :, :24], painted["before"][:, :, :24])  # nothing else changed
    paint_mod.write_outputs(tmp_path / "out", painted)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [*(f"before_{i:03d}.png" for i in range(4)), *(f"edited_{i:03d}.png" for i in range(4)),
                     "paint.json", "paint.png"]  # fmt: skip
    assert json.loads((tmp_path / "out" / "paint.json").read_text())["inside_after"] == 1.0
    with pytest.raises(ConfigError, match="concept=door"):
        paint_mod.paint(PlantedSceneGAN(), SEG, "door", [0, 24, 32, 32])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["concept=red"], "missing ckpt=, box=, out="),
        (["ckpt=x", "concept=red", "box=[0,0,4,4]", "out=o", "colour=1"], "'colour=1' is not key=value"),
        (["ckpt=x", "concept=red", "box=[0,0,4]", "out=o"], "box="),
        (["ckpt=x", "concept=red", "box=[0,0,4,4]", "out=o", "n=zero"], "n=zero must be an integer"),
        (["ckpt=x", "concept=red", "box=[0,0,4,4]", "out=o", "mode=erase"], "mode=erase"),
        (["ckpt=/nonexistent/last.ckpt", "concept=red", "box=[0,0,4,4]", "out=o"], "does not exist"),
    ],
)
def test_paint_cli_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        paint_mod.main(argv)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.startswith("error: ") and message in err and "\n" not in err


def test_paint_cli_end_to_end_on_a_saved_checkpoint(make_cfg, tmp_path, capsys):
    """A checkpoint laid out like a training run's (<run>/.hydra/config.yaml, <run>/checkpoints/last.ckpt)."""
    import hydra

    cfg = make_cfg(["data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=16", "data.source.n=32"])
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    torch.manual_seed(0)
    model = hydra.utils.instantiate(cfg.model)
    (run / "checkpoints").mkdir()
    torch.save({"state_dict": model.state_dict()}, run / "checkpoints" / "last.ckpt")
    argv = [f"ckpt={run / 'checkpoints' / 'last.ckpt'}", "concept=gray", "box=[8,8,24,24]", f"out={tmp_path / 'p'}"]
    argv += ["segmenter=colour", "n=2", "units=2", "dissect_samples=16", "threads=1"]
    assert paint_mod.main(argv) == 0
    assert "insert gray units" in capsys.readouterr().out
    rep = json.loads((tmp_path / "p" / "paint.json").read_text())
    assert rep["box"] == [8, 8, 24, 24] and len(rep["units"]) == 2 and rep["layer"] == "block1"
    assert (tmp_path / "p" / "edited_001.png").is_file()
