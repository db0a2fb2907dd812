"""The dissection scorecard rows at tiny settings: every row present, the planted controls at their known answers.

The reference here is a DCGAN at a random init (no training in the default suite), so its rows are only checked
for shape; the planted generators' answers do not depend on a trained model and must pass on any machine.
"""

from __future__ import annotations

import json

import pytest
import torch

from gan_interp.data import GANDataModule
from gan_interp.data.sources import SyntheticPosterSource
from gan_interp.io import jsonable
from gan_interp.models import DCGAN
from gan_interp.scorecard.dissection import check_dissection
from gan_interp.scorecard.models import random_init_like
from gan_interp.scorecard.rows import rows_to_markdown


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dissect_scorecard")
    dm = GANDataModule(
        SyntheticPosterSource(n=160), resolution=32, cache_dir=str(tmp / "cache"), val_fraction=0.1, test_fraction=0.3
    )
    dm.setup()
    torch.manual_seed(1)
    ref = DCGAN(latent_dim=16, ngf=8, ndf=8, resolution=32).eval()
    return check_dissection(ref, random_init_like(ref, seed=0), dm, seed=0, tiny=True)


def test_every_dissection_row_is_there_with_a_criterion(rows):
    readings = [r.reading for r in rows]
    assert len(rows) == 6 and all(r.probe == "dissection" and r.criterion for r in rows)
    assert readings[0].startswith("mean best IoU, top-1 % threshold (block1)")
    assert readings[1].startswith("mean best IoU at the IQR threshold") and "ratio" in readings[2]
    assert readings[3].startswith("ablation") and readings[4].startswith("spatial insertion")
    for r in rows[:3]:  # real vs shuffled, for the reference and the random init
        assert "real" in r.reference and "shuffled" in r.random_init and len(r.details["reference"]["shuffled"]) == 2
    table = rows_to_markdown(rows)
    assert table.count("\n") == 8 and "| dissection |" in table
    json.dumps(jsonable([r.to_dict() for r in rows]))


def test_planted_controls_reach_their_known_answers(rows):
    for r in rows[:3]:  # planted units are their concepts' masks: reading == known answer, labels right
        planted = r.details["planted"]
        assert planted["mean_relative"] >= 0.9 and planted["labelled"] == len(planted["relative"]) > 0, r.reading
    ablation = rows[3].details["planted"]
    assert ablation and all(a["planted_unit_ranked_first"] and a["beats_every_random"] for a in ablation)
    assert sum(a["ace_top"] for a in ablation) <= 0.9 * sum(a["known_ace"] for a in ablation) < 0
    scene = {c["context"]: c for c in rows[4].details["planted_scene"]["contexts"]}
    assert scene["gray"]["inside_after"] >= 0.9 and scene["blue"]["inside_after"] <= 0.1
    assert rows[5].passed and "texture" in rows[5].planted and "red" not in rows[5].planted
