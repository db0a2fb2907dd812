"""CUDA paths: bf16-mixed training of every model, channels-last inputs, probes and metrics on the GPU,
and DDP over two GPUs. Marked ``gpu``: skipped unless CUDA is present (``tests/conftest.py``), so
they run wherever a GPU is (``make test`` on a GPU machine, or ``pytest -m gpu``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_interp.models import DCGAN
from gan_interp.probes.runner import run_probes
from gan_interp.train import train

pytestmark = pytest.mark.gpu

TINY = {
    "dcgan": ["model=dcgan", "model.ngf=8", "model.ndf=8", "model.latent_dim=16"],
    "stylegan_lite": [
        "model=stylegan_lite",
        "model.channel_base=256",
        "model.channel_max=32",
        "model.latent_dim=16",
        "model.w_dim=16",
        "model.n_mapping=2",
        "data.resolution=32",
    ],
    "kgan": [
        "model=kgan",
        "model.k=2",
        "model.ngf=8",
        "model.ndf=8",
        "model.latent_dim=16",
        "model.n_critic=1",
        "data.resolution=32",
    ],
}


@pytest.mark.parametrize("model", sorted(TINY))
def test_every_model_trains_in_bf16_on_the_gpu(make_cfg, model):
    cfg = make_cfg(
        [
            "data=fake",
            *TINY[model],
            "trainer=gpu",
            "trainer.max_epochs=2",
            "logger=none",
            "probes=activations",
            "metrics=none",
        ]
    )
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    assert metrics["g_steps"] > 0
    assert all(torch.isfinite(torch.tensor(v)) for k, v in metrics.items() if k.startswith("train/"))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values() if t.is_floating_point())


def test_channels_last_inputs_give_the_same_scores():
    m = DCGAN(latent_dim=16, ngf=8, ndf=8, resolution=32).cuda().eval()
    x = m.generate(m.sample_z(4, torch.Generator().manual_seed(0)))
    with torch.no_grad():
        plain = m.critic(x)
        m_cl = m.to(memory_format=torch.channels_last)
        cl = m_cl.critic(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(plain, cl, atol=1e-4)


def test_probes_run_on_a_cuda_model(tmp_path):
    m = DCGAN(latent_dim=16, ngf=8, ndf=8, resolution=32).cuda()
    cfg = {
        "activations": {"n": 4},
        "traversals": {"dims": 2, "steps": 3, "n_pairs": 1, "freeze_dims": 1, "n_resample": 2},
        "directions": {"k": 2, "steps": 3, "n_samples": 16},
        "filters": {},
    }
    results = run_probes(m, None, cfg, tmp_path / "probes" / "epoch_000", 0, strict=True)
    assert set(results) == set(cfg)
    assert json.loads((tmp_path / "probes" / "epoch_000" / "probes.json").read_text())["epoch"] == 0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP on GPUs needs two devices")
def test_ddp_on_two_gpus(tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "gan_interp.train",
        "trainer=ddp",
        "trainer.devices=2",
        "data=fake",
        *TINY["dcgan"],
        "trainer.max_epochs=1",
        "logger=csv",
        "probes=none",
        "metrics=none",
        f"hydra.run.dir={run}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.data_dir={tmp_path / 'data'}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "metrics.json").is_file()
