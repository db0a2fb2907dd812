"""Linear CKA known answers, activation capture and the activations probe."""

from __future__ import annotations

import json

import pytest
import torch

from gan_interp.models import DCGAN
from gan_interp.probes.activations import (
    activations_probe,
    cka_across_models,
    cka_matrix,
    layer_activations,
    linear_cka,
    pooled,
)
from gan_interp.probes.context import ProbeContext


@pytest.fixture
def xy():
    g = torch.Generator().manual_seed(0)
    return torch.randn(40, 12, generator=g, dtype=torch.float64), torch.randn(40, 30, generator=g, dtype=torch.float64)


def test_cka_of_identical_representations_is_one(xy):
    x, _ = xy
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling(xy):
    x, y = xy
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    ref = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(ref, abs=1e-10)
    assert linear_cka(3.7 * x, 0.01 * y) == pytest.approx(ref, abs=1e-10)
    assert linear_cka(x @ q * 5.0, x) == pytest.approx(1.0, abs=1e-10)
    # ... but not to a non-isotropic scaling of the features
    assert abs(linear_cka(x * torch.linspace(0.1, 10, 12, dtype=torch.float64), x) - 1.0) > 1e-3


def test_cka_matches_the_feature_space_formula(xy):
    x, y = xy
    xc, yc = (x - x.mean(0)).double(), (y - y.mean(0)).double()
    expected = (yc.T @ xc).norm() ** 2 / ((xc.T @ xc).norm() * (yc.T @ yc).norm())
    assert linear_cka(x, y) == pytest.approx(float(expected), abs=1e-10)
    assert 0.0 <= linear_cka(x, y) < 0.6  # independent noise: low similarity
    mat = cka_matrix({"a": x, "b": y}, {"a": x, "b": y})
    assert torch.allclose(mat, mat.T) and torch.allclose(mat.diag(), torch.ones(2, dtype=mat.dtype))
    with pytest.raises(ValueError):
        linear_cka(x, y[:10])


def test_layer_activations_stop_early_and_pool():
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32).eval()
    layers = model.generator_layers()
    calls = []
    handle = layers["to_image"].register_forward_hook(lambda *a: calls.append(1))
    acts = layer_activations({"block0": layers["block0"]}, lambda: model.generate(torch.randn(2, 8)))
    handle.remove()
    assert acts["block0"].shape == (2, 32, 4, 4) and calls == []  # the forward stopped after block0
    assert pooled(torch.randn(2, 4, 32, 32), 8).shape == (2, 4 * 8 * 8)
    z = torch.randn(5, 8)
    mat, rows, cols = cka_across_models(model, model, z)
    assert rows == cols == list(layers) and torch.allclose(mat.diag(), torch.ones(len(layers), dtype=mat.dtype))


def test_activations_probe_layers_similar_inputs_and_epochs(tmp_path):
    torch.manual_seed(0)
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32).eval()
    ctx0 = ProbeContext.create("activations", model, None, tmp_path / "epoch_000")
    s0 = activations_probe(ctx0, n=6, max_channels=4, grid_layers=["block0"])
    out = tmp_path / "epoch_000" / "activations"
    assert {"G_block0_channels.png", "G_cka_layers.png", "D_cka_layers.png", "G_mean_activation.png", "acts.pt"} <= {
        p.name for p in out.iterdir()
    }
    assert set(s0["layers"]["G"]) == {"block0", "block1", "block2", "to_image"}
    for side in ("G", "D"):
        mat = torch.tensor(s0["cka_layers"][side]["matrix"])
        assert torch.allclose(mat.diag(), torch.ones(mat.shape[0], dtype=mat.dtype), atol=1e-6)
    sim = s0["similar_inputs"]["G"]["block0"]
    assert sim["cka_similar"] > sim["cka_unrelated"] and sim["cos_similar"] > 0.9
    assert "cka_vs_previous_epoch" not in s0
    # a later epoch compares with the stored one: unchanged weights -> CKA 1 on every layer
    ctx3 = ProbeContext.create("activations", model, None, tmp_path / "epoch_003")
    s1 = activations_probe(ctx3, n=6, max_channels=4, grid_layers=[])
    prev = s1["cka_vs_previous_epoch"]
    assert prev["epoch"] == 0 and all(v == pytest.approx(1.0, abs=1e-3) for k, v in prev.items() if k != "epoch")
    assert json.loads((tmp_path / "epoch_003" / "activations" / "cka_vs_previous_epoch.json").read_text())[
        "columns"
    ] == ["layer", "cka"]
