"""Every probe on the other models: StyleGAN-lite (w space, per-layer, SeFa on style affines) and k-GAN (members)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from gan_interp.models.base import has_style_space
from gan_interp.probes.directions import sefa_directions, sefa_matrix
from gan_interp.probes.runner import run_probes

SMALL = {
    "saliency": {"n": 2, "nt_samples": 2},
    "activations": {"n": 4, "max_channels": 4, "grid_layers": []},
    "traversals": {"dims": 2, "steps": 3, "n_pairs": 1, "freeze_dims": 1, "n_resample": 2},
    "directions": {"k": 2, "steps": 3, "n_samples": 16},
    "actmax": {"channels": 2, "steps": 2, "prior": True},
    "filters": {},
    "neighbours": {"n": 2, "k": 1},
    "members": {"n": 2, "n_medoid": 4},
}


def _needs(module: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} is not written yet")


@_needs("gan_interp.models.stylegan_lite")
def test_stylegan_lite_w_space_probes(tmp_path):
    from gan_interp.models.stylegan_lite import StyleGANLite

    torch.manual_seed(0)
    model = StyleGANLite(
        latent_dim=16, w_dim=16, n_mapping=2, channel_base=256, channel_max=16, resolution=32, channels=3
    )
    assert has_style_space(model) and model.n_ws == 2 * 5 - 2  # 32 px: 2 log2(res) - 2 ws
    weight, space = model.sefa_weight()  # stacked style affines [sum C, w_dim]
    assert space == "w" and weight.shape[1] == 16
    evals, v = sefa_directions(sefa_matrix(weight), k=3)
    assert torch.allclose(v @ v.T, torch.eye(3), atol=1e-5)
    assert model.discriminator_input_conv() is model.discriminator.fromrgb  # the equalized-lr fromrgb conv

    results = run_probes(model, None, SMALL, tmp_path, epoch=0, strict=True)
    assert {"w_dims.png", "w_per_layer.png", "z_dims.png"} <= {p.name for p in (tmp_path / "traversals").iterdir()}
    assert (
        results["traversals"]["num_ws"] == model.n_ws and len(results["traversals"]["w_per_layer_change"]) == model.n_ws
    )
    assert results["directions"]["sefa"]["space"] == "w" and results["directions"]["ganspace"]["space"] == "w"
    assert "weight_shape" in results["filters"] and "members" not in results  # members: not called, reason recorded
    skipped = json.loads((tmp_path / "probes.json").read_text())["skipped"]
    assert skipped == {"neighbours": "no datamodule", "members": "model has no k-GAN members"}
    assert all("error" not in r for r in results.values())


@_needs("gan_interp.models.kgan")
def test_kgan_member_probes(tmp_path):
    from gan_interp.models.kgan import KGAN

    torch.manual_seed(0)
    model = KGAN(latent_dim=8, k=3, ngf=4, ndf=4, resolution=32, channels=3)
    assert model.n_members == 3 and not has_style_space(model)
    results = run_probes(model, None, SMALL, tmp_path, epoch=0, strict=True)
    assert results["members"]["k"] == 3 and len(results["members"]["medoid_distances"]) == 3
    assert (tmp_path / "members" / "sample_medoids.png").is_file() and (tmp_path / "members" / "samples.png").is_file()
    assert results["directions"]["member"] == 0 and results["directions"]["sefa"]["space"] == "z"
    assert all("error" not in r for r in results.values())


@_needs("gan_interp.models.kgan")
def test_kgan_probes_per_member_and_pinned_members(tmp_path):
    from gan_interp.models.kgan import KGAN

    torch.manual_seed(0)
    model = KGAN(latent_dim=8, k=2, ngf=4, ndf=4, resolution=32, channels=3)
    model.partition.ready.fill_(True)
    model.partition.sites[1].fill_(1.0)  # two distinct cells: dark images -> member 0, bright -> member 1
    cfg = {name: {**SMALL[name], "per_member": True} for name in ("traversals", "actmax", "filters", "members")}
    calls: list = []
    critic = model.critic
    model.critic = lambda x, member=None: calls.append(member) or critic(x, member=member)  # spy on routing
    results = run_probes(model, None, cfg, tmp_path, epoch=0, strict=True)
    # per member: a summary in summary.json, files in <probe>/m{j}/; a probe a member lacks says why
    for name in ("traversals", "actmax", "filters"):
        per = json.loads((tmp_path / name / "summary.json").read_text())["per_member"]
        assert set(per) == {"0", "1"} and all("skipped" not in s for s in per.values()), name
        assert (tmp_path / name / "m1").is_dir()
    assert results["members"]["per_member"]["0"] == {"skipped": "model has no k-GAN members"}
    assert results["filters"]["per_member"]["1"]["mean_norm"] != results["filters"]["per_member"]["0"]["mean_norm"]
    # actmax: the 5 critic calls of the pixel optimisation (scale, start, 2 steps, end) name the same members,
    # fixed from the start images, although the images move
    pinned = [c for c in calls if c is not None]
    assert len(pinned) >= 5 and all(torch.equal(c, pinned[0]) for c in pinned[:5])
    assert results["actmax"]["pixel"]["member"] == pinned[0].tolist()
    # traversals: every frame of the z traversal is made by z[0]'s member (no member switch along a row)
    assert results["traversals"]["member"] in (0, 1)
    # readings: every member's own scalars, next to the ensemble's
    logged: dict = {}

    class Recorder:  # any non-W&B logger: log_metrics(values, step)
        def log_metrics(self, values, step):
            logged.update(values)

    run_probes(model, None, {"filters": {"per_member": True}}, tmp_path / "again", 0, loggers=[Recorder()])
    assert {"probes/filters/mean_norm", "probes/filters/per_member/0/mean_norm"} <= set(logged)
    assert logged["probes/filters/per_member/1/mean_norm"] == results["filters"]["per_member"]["1"]["mean_norm"]
