"""Latent traversal functions change exactly the intended inputs; the probe renders its grids."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gan_interp.models import DCGAN
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.traversals import (
    freeze_and_resample,
    lerp,
    per_layer_mix,
    slerp,
    step_changes,
    traversal_probe_dims,
    traversals_probe,
    traverse_dim,
)


@pytest.fixture
def z0() -> torch.Tensor:
    return torch.randn(10, generator=torch.Generator().manual_seed(0))


def test_traverse_dim_changes_only_that_dim(z0):
    values = torch.linspace(-3, 3, 7)
    z = traverse_dim(z0, 4, values)
    assert z.shape == (7, 10)
    assert torch.equal(z[:, 4], values)
    others = [d for d in range(10) if d != 4]
    assert torch.equal(z[:, others], z0[others].expand(7, -1))
    assert torch.equal(z0, torch.randn(10, generator=torch.Generator().manual_seed(0)))  # input untouched


def test_freeze_and_resample_keeps_only_the_frozen_dim(z0):
    g = torch.Generator().manual_seed(1)
    z = freeze_and_resample(z0, 2, 6, g)
    assert z.shape == (6, 10)
    assert torch.equal(z[:, 2], z0[2].expand(6))  # frozen at z0's value in every sample
    others = [d for d in range(10) if d != 2]
    assert (z[:, others] != z0[others]).all()  # every other coordinate resampled ...
    assert (z[1:, others] != z[:-1, others]).all()  # ... independently per sample
    assert torch.equal(freeze_and_resample(z0, 2, 6, torch.Generator().manual_seed(1)), z)  # seeded
    assert torch.equal(freeze_and_resample(z0, 7, 3, g, value=2.5)[:, 7], torch.full((3,), 2.5))


def test_lerp_and_slerp(z0):
    z1 = torch.randn(10, generator=torch.Generator().manual_seed(5))
    t = torch.linspace(0, 1, 5)
    for fn in (lerp, slerp):
        path = fn(z0, z1, t)
        assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    assert torch.allclose(lerp(z0, z1, t)[2], (z0 + z1) / 2)
    a, b = z0 / z0.norm() * 3, z1 / z1.norm() * 3  # equal norms: slerp stays on the sphere
    assert torch.allclose(slerp(a, b, torch.linspace(0, 1, 9)).norm(dim=1), torch.full((9,), 3.0), atol=1e-4)
    assert torch.allclose(slerp(a, a, t), a.expand(5, -1))  # parallel endpoints fall back to lerp


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_slerp_known_answers_parallel_and_antipodal(dtype):
    z = torch.tensor([3.0, -4.0, 12.0], dtype=dtype)
    t = torch.linspace(0, 1, 5, dtype=dtype)
    assert torch.allclose(slerp(z, z, t), z.expand(5, -1))  # parallel: constant
    assert torch.allclose(slerp(z, 2 * z, t), (1 + t)[:, None] * z)  # parallel, other norm: lerp
    anti = slerp(z, -z, t)  # antipodal: no unique great circle -> lerp, (1 - 2t) z
    assert torch.allclose(anti, (1 - 2 * t)[:, None] * z, atol=1e-6)
    assert anti.dtype == dtype
    assert torch.allclose(slerp(torch.zeros(3, dtype=dtype), z, t), t[:, None] * z)  # zero endpoint: lerp


@pytest.mark.parametrize("dtype,s", [(torch.float32, 2.0**-10), (torch.float64, 2.0**-20)])
def test_slerp_near_antipodal_follows_the_great_circle(dtype, s):
    # u = e1, v = (-1, s): exactly representable, angle w = pi - atan(s) (nearly antipodal), |v| = sqrt(1 + s^2).
    # Shoemake's slerp(t) = (sin((1-t) w) u + sin(t w) v) / sin(w), written out with v = |v| (cos w e1 + sin w e2):
    w, nv = math.pi - math.atan(s), math.sqrt(1 + s * s)
    t = torch.linspace(0, 1, 9, dtype=torch.float64)
    e1 = (torch.sin((1 - t) * w) + nv * torch.sin(t * w) * math.cos(w)) / math.sin(w)
    expected = torch.stack([e1, nv * torch.sin(t * w), torch.zeros_like(t)], 1)
    u, v = torch.tensor([1.0, 0.0, 0.0], dtype=dtype), torch.tensor([-1.0, s, 0.0], dtype=dtype)
    got = slerp(u, v, t.to(dtype))
    assert got.dtype == dtype
    assert torch.allclose(got.double(), expected, atol=1e-5)
    assert float(got.double().norm(dim=1).max()) < 1.001  # near the unit circle, never blows up


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_slerp_orthogonal_quarter_circle(dtype):
    e1, e2 = torch.eye(2, dtype=dtype)
    t = torch.tensor([0.0, 1 / 3, 0.5, 1.0], dtype=dtype)
    got = slerp(2 * e1, 2 * e2, t)
    expected = 2 * torch.stack([torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)], 1)
    assert torch.allclose(got, expected, atol=1e-6)


def test_per_layer_mix_moves_one_layer_only():
    w0, w1 = torch.zeros(4), torch.ones(4)
    ws = per_layer_mix(w0, w1, n_layers=5, layer=3, t=torch.tensor([0.0, 0.5, 1.0]))
    assert ws.shape == (3, 5, 4)
    assert torch.equal(ws[:, 3, 0], torch.tensor([0.0, 0.5, 1.0]))
    assert torch.equal(ws[:, [0, 1, 2, 4]], torch.zeros(3, 4, 4))


def test_step_changes_known_answer():
    frames = torch.arange(6.0).view(6, 1, 1, 1)  # 2 rows of 3 frames: 0,1,2 and 3,4,5
    assert step_changes(frames, 3).tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_traversals_probe_outputs(tmp_path):
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32).eval()
    with torch.no_grad():
        ctx = ProbeContext.create("traversals", model, None, tmp_path)
        s = traversals_probe(ctx, dims=[1, 3], steps=3, n_pairs=1, freeze_dims=1, n_resample=3)
    out = tmp_path / "traversals"
    assert {"z_dims.png", "interpolations.png", "freeze_resample.png", "summary.json"} <= {
        p.name for p in out.iterdir()
    }
    assert s["dims"] == [1, 3] and set(s["freeze_diversity"]) == {"1", "none"}
    assert json.loads((out / "summary.json").read_text())["values"] == [-3.0, 0.0, 3.0]
    assert traversal_probe_dims(4, 8) == [0, 1, 2, 3] and traversal_probe_dims([2, 9, -1], 8) == [2]
