"""The ``dissection`` probe through the probe runner and the ``probes=dissection`` config."""

from __future__ import annotations

import json

import pytest
import torch

from gan_interp.data import GANDataModule
from gan_interp.data.sources import FakeSource
from gan_interp.models import DCGAN
from gan_interp.probes.registry import get_probe
from gan_interp.probes.runner import run_probes
from gan_interp.train import scheduled_callbacks


def test_dissection_probe_writes_json_figures_and_interventions(tmp_path):
    torch.manual_seed(0)
    model = DCGAN(latent_dim=16, ngf=8, ndf=8, resolution=32)
    dm = GANDataModule(FakeSource(n=32), resolution=32, cache_dir=str(tmp_path / "cache"), batch_size=8)
    cfg = {
        "dissection": {
            "n_samples": 32,
            "batch_size": 16,
            "strip_units": 3,
            "strip_k": 3,
            "ace_concepts": 1,
            "ace_units": [1, 2],
            "ace_samples": 8,
            "artifact_units": 2,
            "artifact_samples": 16,
        }
    }
    results = run_probes(model, dm, cfg, tmp_path / "probes", epoch=0, strict=True)
    out = tmp_path / "probes" / "dissection"
    for name in (
        "dissection.json",
        "summary.png",
        "unit_strips.png",
        "ace.json",
        "ace.png",
        "artifacts.json",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    js = json.loads((out / "dissection.json").read_text())
    assert js["layer"] == "block1" and len(js["units"]) == 16  # ngf 8 -> 16 channels at 8x8
    assert js["segmenter"]["type"] == "ColourSegmenter" and "red" in js["concepts"]
    assert all(0.0 <= u["iou"] <= 1.0 and u["concept"] in js["concepts"] for u in js["units"])
    assert abs(sum(js["concept_fraction"].values()) - 1.0 - js["concept_fraction"]["texture"]) < 1e-6
    summary = results["dissection"]
    assert summary["layer"] == "block1" and summary["n_units"] == 16 and "quantile" in summary
    ace = json.loads((out / "ace.json").read_text())
    assert [r["mode"] for r in ace] == ["ablate", "ablate", "insert", "insert"]
    art = json.loads((out / "artifacts.json").read_text())
    assert len(art["units"]) == 2 and {"critic_before", "critic_after", "swd_before", "swd_after"} <= set(art)
    assert model.training  # the runner restores the train flags


def test_probes_dissection_config_composes_and_validates(make_cfg):
    cfg = make_cfg(["probes=dissection", "schedule=at_end", "metrics=none"])
    assert get_probe("dissection").name == "dissection" and get_probe("dissection").requires == ("generator_layers",)
    [callback] = scheduled_callbacks(cfg)  # checks every option name against the probe signature
    assert callback.probes["dissection"]["quantile"] == pytest.approx(0.01)
    assert callback.schedule.at_end and callback.schedule.epochs == [] and callback.schedule.every_n_epochs == 0
