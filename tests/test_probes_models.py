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
