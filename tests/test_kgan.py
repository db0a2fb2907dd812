"""k-GAN: training through the Hydra entry point, baselines, routing contract, GP, partition state, epoch images."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from gan_interp.config import validate_config
from gan_interp.errors import ConfigError
from gan_interp.models import losses, model_class
from gan_interp.models import partition as P
from gan_interp.models.kgan import KGAN
from gan_interp.models.kgan_partition import KGANPartition
from gan_interp.train import train

TINY = ["model=kgan", "data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=16", "logger=none", "callbacks=none"]
EPOCH_IMAGES = "+callbacks.kgan_epoch_images._target_=gan_interp.callbacks.kgan_epoch_images.KGANEpochImages"


def tiny_kgan(**kw) -> KGAN:
    args = dict(latent_dim=8, k=3, ngf=4, ndf=4, resolution=32, channels=3)
    return KGAN(**(args | kw))


def three_clusters() -> tuple[torch.Tensor, torch.Tensor]:
    """30 images in three well separated clusters of 10 (grey levels -1, 0, 1) and their OT features."""
    g = torch.Generator().manual_seed(4)
    centres = torch.tensor([-1.0, 0.0, 1.0])
    noise = 0.05 * torch.randn(30, 3, 32, 32, generator=g)
    images = (centres.repeat_interleave(10)[:, None, None, None] + noise).clamp(-1, 1)
    return images, P.pixel_features(images, 8)


def test_fast_dev_run_partitions_the_batch_and_writes_medoids_and_samples(make_cfg):
    cfg = make_cfg([*TINY, EPOCH_IMAGES, "++trainer.fast_dev_run=true"])
    metrics = train(cfg)
    assert metrics["g_steps"] == 1.0  # generator round on batch 0 (then every n_critic batches)
    # 64 fake images, 48 for training: 3 balanced cells of 16; the 16-image batch is split among them
    assert [metrics[f"kgan/cell_size/m{j}"] for j in range(3)] == [16.0, 16.0, 16.0]
    rows = [metrics[f"train/m{j}/batch_rows"] for j in range(3) if f"train/m{j}/batch_rows" in metrics]
    assert sum(rows) == 16.0
    for j in range(3):
        if f"train/m{j}/d_loss" in metrics:
            assert torch.isfinite(torch.tensor(metrics[f"train/m{j}/d_loss"]))
            assert metrics[f"train/m{j}/gp"] >= 0
    out = Path(cfg.paths.output_dir) / "kgan" / "epoch_000"
    assert {p.name for p in out.iterdir()} == {
        "cell_medoids.png",
        "samples_m0.png",
        "samples_m1.png",
        "samples_m2.png",
        "partition.json",
    }
    info = json.loads((out / "partition.json").read_text())
    split = json.loads((Path(cfg.paths.output_dir) / "data_split.json").read_text())
    assert info["cell_sizes"] == [16, 16, 16] and all(r in split["train"] for r in info["medoid_rows"])


def test_baselines_one_gan_counts_critic_rounds_in_bf16(make_cfg):
    # k=1 baseline, 2 epochs of 3 batches: generator rounds at batches 0 and 5 (n_critic=5)
    cfg = make_cfg(
        [*TINY, "model.k=1", "trainer.max_epochs=2", "trainer.limit_val_batches=1", "trainer.precision=bf16-mixed"]
    )
    metrics = train(cfg)
    assert metrics["g_steps"] == 2.0
    assert metrics["kgan/cell_size/m0"] == 48.0 and metrics["train/m0/batch_rows"] == 16.0
    assert torch.isfinite(torch.tensor(metrics["train/m0/gp"]))


def test_baseline_independent_members_see_all_data(make_cfg):
    cfg = make_cfg(
        [
            *TINY,
            "model.k=2",
            "model.independent=true",
            "model.arch=dcgan",
            "++trainer.fast_dev_run=true",
            "trainer.precision=bf16-mixed",
        ]
    )
    metrics = train(cfg)
    assert metrics["train/m0/batch_rows"] == 16.0 and metrics["train/m1/batch_rows"] == 16.0
    assert metrics["g_steps"] == 1.0


def test_fp16_refused_but_bf16_and_fp32_accepted(make_cfg):
    assert KGAN.uses_double_backward and model_class("kgan") is KGAN
    with pytest.raises(ConfigError, match="16-mixed"):
        validate_config(make_cfg([*TINY, "trainer.precision=16-mixed"]))
    for precision in ("32-true", "bf16-mixed"):
        validate_config(make_cfg([*TINY, f"trainer.precision={precision}"]))
    with pytest.raises(ConfigError, match="model.lr"):
        validate_config(make_cfg([*TINY, "model.lr=0"]))


def test_generate_is_deterministic_and_routes_by_quantile_bins():
    torch.manual_seed(0)
    m = tiny_kgan().eval()
    z = m.sample_z(600, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x1, x2 = m.generate(z), m.generate(z)
    assert x1.shape == (600, 3, 32, 32) and torch.equal(x1, x2) and x1.abs().max() <= 1
    member, z_in = m.route_latents(z)
    u = torch.special.ndtr(z[:, 0].double())
    assert torch.equal(member, (u * 3).floor().long().clamp(max=2))  # balanced: bins of width 1/3
    assert torch.equal(z_in[:, 1:], z[:, 1:])  # only z[:, 0] is re-standardised inside its bin
    for j in range(3):
        rows = member == j
        assert 150 < int(rows.sum()) < 250  # ~200 each
        with torch.no_grad():
            assert torch.allclose(x1[rows], m.generate(z_in[rows], member=j), atol=1e-6)
    # z[:, 0] inside a bin maps back to a standard normal: uniform position within the bin
    inner = torch.special.ndtr(z_in[:, 0].double())
    assert abs(float(inner.mean()) - 0.5) < 0.05
    # unequal cell weights move the bin edges
    m.partition.cell_weights.copy_(torch.tensor([0.5, 0.25, 0.25]))
    member, _ = m.route_latents(z)
    assert torch.equal(member == 0, u < 0.5)


def test_layers_are_full_batch_taps_and_member_views():
    torch.manual_seed(0)
    m = tiny_kgan().eval()
    z = m.sample_z(12, generator=torch.Generator().manual_seed(2))
    seen: dict[str, tuple] = {}
    hooks = [
        mod.register_forward_hook(lambda mod, i, o, name=name: seen.__setitem__(name, tuple(o.shape)))
        for name, mod in m.generator_layers().items()
    ]
    with torch.no_grad():
        x = m.generate(z)
    assert seen == {
        "fc": (12, 16, 4, 4),
        "block0": (12, 8, 8, 8),
        "block1": (12, 4, 16, 16),
        "to_image": (12, 3, 32, 32),
    }
    ablate = m.generator_layers()["block1"].register_forward_hook(lambda mod, i, o: torch.zeros_like(o))
    with torch.no_grad():
        x_ablated = m.generate(z)
    ablate.remove()
    for h in hooks:
        h.remove()
    assert not torch.allclose(x, x_ablated)
    assert set(m.discriminator_layers()) == {"block0", "block1", "to_score"}
    assert set(m.generator_layers(member=1)) == {"m1.fc", "m1.block0", "m1.block1", "m1.to_image"}
    view = m.member_view(2)
    with torch.no_grad():
        assert torch.equal(view.generate(z), m.generate(z, member=2))
        assert torch.equal(view.critic(x), m.critic(x, member=2))
    assert view.critic(x).shape == (12,) and set(view.generator_layers()) == {
        "m2.fc",
        "m2.block0",
        "m2.block1",
        "m2.to_image",
    }
    assert m.critic(x).shape == (12,)


def test_gradient_penalty_is_per_sample_and_finite():
    torch.manual_seed(0)
    member = tiny_kgan(k=1).members[0]
    real, fake = torch.rand(6, 3, 32, 32) * 2 - 1, torch.rand(6, 3, 32, 32) * 2 - 1
    gp = losses.gradient_penalty(member.critic_scores, real, fake, generator=torch.Generator().manual_seed(3))
    assert gp.shape == (6,) and bool(torch.isfinite(gp).all())
    # sample 0's penalty does not depend on the other samples (no batch statistics in the critic)
    fake2 = fake.clone()
    fake2[1:] = 5.0
    gp2 = losses.gradient_penalty(member.critic_scores, real, fake2, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(gp[0], gp2[0], rtol=1e-5) and not torch.allclose(gp[1:], gp2[1:])
    # ... and equals the penalty computed on that sample alone (same interpolation weight)
    alpha = torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(3))
    x_hat = (alpha[:1] * real[:1] + (1 - alpha[:1]) * fake[:1]).requires_grad_(True)
    (grad,) = torch.autograd.grad(member.critic_scores(x_hat).sum(), x_hat)
    assert torch.allclose(gp[0], (grad.flatten().norm() - 1) ** 2, rtol=1e-4)
    # known answer: a linear critic f(x) = <a, x> has gradient a everywhere -> (||a|| - 1)^2
    a = torch.full((1, 3, 32, 32), 0.05)
    gp_lin = losses.gradient_penalty(lambda x: (x * a).flatten(1).sum(1), real, fake)
    assert torch.allclose(gp_lin, torch.full((6,), (0.05 * 3072**0.5 - 1) ** 2), rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp_bf16 = losses.gradient_penalty(member.critic_scores, real, fake)
    assert bool(torch.isfinite(gp_bf16).all())


def test_module_partition_update_and_checkpoint_state():
    torch.manual_seed(0)
    m = tiny_kgan(k=3, init_iters=3)
    images, feats = three_clusters()
    rows = torch.arange(100, 130)  # cache rows need not start at 0
    part = m.partition.update(feats, rows, epoch=0)
    assert part.counts.tolist() == [10, 10, 10]
    # three well separated clusters of 10: the balanced cells are exactly the clusters
    cells = [set(part.assignment[i * 10 : (i + 1) * 10].tolist()) for i in range(3)]
    assert all(len(c) == 1 for c in cells) and len(set.union(*cells)) == 3
    assert torch.allclose(m.partition.cell_weights, torch.full((3,), 1 / 3))
    assert torch.equal(m.partition.members_of(rows[[0, 15, 29]], images[[0, 15, 29]]), part.assignment[[0, 15, 29]])
    # rows the partition does not know are routed by power cells of their features
    assert torch.equal(m.partition.members_of(torch.tensor([999]), images[15:16]), part.assignment[15:16])
    assert torch.equal(m.route_images(images), part.assignment)
    # second call: one Lloyd round, sites = centroids of the cells
    m.partition.update(feats, rows, epoch=1)
    assert torch.allclose(m.partition.sites, P.cell_centroids(feats, m.partition.row_to_member[rows], 3), atol=1e-5)
    # checkpoint round trip (weights_only load, as the probe CLI does)
    m.batches_seen = 7
    ckpt: dict = {}
    m.on_save_checkpoint(ckpt)
    buf = io.BytesIO()
    torch.save({"state_dict": m.state_dict(), **ckpt}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    m2 = tiny_kgan(k=3)
    m2.load_state_dict(loaded["state_dict"])
    m2.on_load_checkpoint(loaded)
    assert torch.equal(m2.partition.row_to_member, m.partition.row_to_member) and bool(m2.partition.ready)
    assert m2.partition.epoch == 1 and m2.batches_seen == 7 and m2.partition.stats == m.partition.stats
    assert torch.equal(m2.route_images(images), part.assignment)


def test_partition_exists_after_init_and_survives_a_state_round_trip():
    fresh = KGANPartition(3, channels=3, feature_size=4)
    # everything exists right after __init__, with the values of "no partition yet"
    assert fresh.sites.shape == (3, 48) and fresh.offsets.dtype == torch.float64 and not bool(fresh.ready)
    assert torch.equal(fresh.cell_weights, torch.full((3,), 1 / 3))
    assert fresh.row_to_member is None and fresh.medoid_rows == [] and fresh.cell_sizes is None
    assert fresh.stats == {} and fresh.epoch is None
    assert set(fresh.state_dict()) == {"sites", "offsets", "cell_weights", "ready"}
    assert fresh.checkpoint_state() == {
        "row_to_member": None,
        "medoid_rows": [],
        "cell_sizes": None,
        "stats": {},
        "partition_epoch": None,
    }
    # before the first update, unknown rows fall back to power cells with zero sites/offsets: cell 0
    images, _ = three_clusters()
    assert torch.equal(fresh.members_of(torch.arange(3), images[:3]), torch.zeros(3, dtype=torch.long))

    part = KGANPartition(3, channels=3, feature_size=4)
    feats = part.features(images)
    rows = torch.arange(30) * 2  # every other cache row
    part.update(feats, rows, epoch=4)
    buf = io.BytesIO()
    torch.save({"buffers": part.state_dict(), "python": part.checkpoint_state()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    copy = KGANPartition(3, channels=3, feature_size=4)
    copy.load_state_dict(saved["buffers"])
    copy.load_checkpoint_state(saved["python"])
    for name, value in part.state_dict().items():
        assert torch.equal(copy.state_dict()[name], value), name
    assert torch.equal(copy.row_to_member, part.row_to_member) and copy.row_to_member.tolist()[1::2] == [-1] * 29
    assert copy.medoid_rows == part.medoid_rows and copy.cell_sizes == part.cell_sizes == [10, 10, 10]
    assert copy.stats == part.stats and copy.epoch == 4 and copy.summary() == part.summary()
    assert torch.equal(copy.assign(feats), part.assign(feats))


def test_partition_update_puts_two_clusters_into_different_cells():
    # known answer: 8 images at -0.8 and 8 at +0.8 (grey), 2 cells -> the cells are the clusters, their sites the
    # cluster means, each medoid is a member of its own cluster and the OT cost is the mean squared spread
    g = torch.Generator().manual_seed(0)
    levels = torch.tensor([-0.8] * 8 + [0.8] * 8)
    images = levels[:, None, None, None] + 0.01 * torch.randn(16, 1, 8, 8, generator=g)
    part = KGANPartition(2, channels=1, feature_size=2, init_iters=2)
    feats = part.features(images)
    rows = torch.arange(16)
    result = part.update(feats, rows)
    first, second = set(result.assignment[:8].tolist()), set(result.assignment[8:].tolist())
    assert len(first) == len(second) == 1 and first != second
    assert part.cell_sizes == [8, 8] and torch.allclose(part.cell_weights, torch.full((2,), 0.5))
    cell_of_low = first.pop()
    assert torch.allclose(part.sites[cell_of_low], feats[:8].mean(0), atol=1e-6)
    assert part.medoid_rows[cell_of_low] < 8 <= part.medoid_rows[1 - cell_of_low]
    spread = float(((feats - part.sites[result.assignment]) ** 2).sum(1).mean())
    assert part.stats == pytest.approx({"ot_cost": spread, "reseeded": 0.0})
    assert torch.equal(part.assign(part.features(torch.full((1, 1, 8, 8), -0.8))), torch.tensor([cell_of_low]))
    assert torch.equal(part.members_of(torch.tensor([3, 12]), images[[3, 12]]), result.assignment[[3, 12]])
    # uniform_weights (independent GANs): the same cells, latent bins 1/k whatever the cell sizes
    uniform = KGANPartition(2, channels=1, feature_size=2, uniform_weights=True, balanced=False)
    uniform.update(feats[:12], rows[:12])  # 8 + 4 images: unbalanced Voronoi cells
    assert sorted(uniform.cell_sizes) == [4, 8] and torch.allclose(uniform.cell_weights, torch.full((2,), 0.5))


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="model.k"):
        tiny_kgan(k=0)
    with pytest.raises(ConfigError, match="model.arch"):
        tiny_kgan(arch="resnet")
    with pytest.raises(ConfigError, match="data.resolution"):
        tiny_kgan(resolution=128)
    with pytest.raises(ConfigError, match="feature_space"):
        tiny_kgan(feature_space="clip")


def test_training_step_updates_only_members_with_rows_in_the_batch(tmp_path):
    import lightning as L
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    m = tiny_kgan(k=3)
    m.partition.row_to_member = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])  # rows 0-3 belong to member 0
    m.partition.ready.fill_(True)
    m.partition.epoch = 0  # partition of epoch 0 already there: no datamodule needed
    batch = {"image": torch.rand(4, 3, 32, 32) * 2 - 1, "index": torch.arange(4)}
    loader = DataLoader([batch], batch_size=None)
    before = [[p.clone() for p in mem.parameters()] for mem in m.members]
    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(m, train_dataloaders=loader)
    changed = [any(not torch.equal(a, b) for a, b in zip(old, mem.parameters())) for old, mem in zip(before, m.members)]
    assert changed == [True, False, False]
    assert m.g_steps == 1 and m.batches_seen == 1
    assert trainer.callback_metrics["train/m0/batch_rows"] == 4.0 and "train/m1/d_loss" not in trainer.callback_metrics


def test_epoch_images_follow_the_schedule_and_only_for_kgan(monkeypatch):
    from types import SimpleNamespace

    from gan_interp.callbacks.kgan_epoch_images import KGANEpochImages
    from gan_interp.models import DCGAN

    written: list[int] = []
    cb = KGANEpochImages(n_samples=4, every_n_epochs=2)
    monkeypatch.setattr(cb, "write", lambda trainer, model, epoch: written.append(epoch))
    model = tiny_kgan(k=2)
    for epoch in range(5):  # every 2nd epoch (1, 3) and the last (4)
        cb.on_train_epoch_end(SimpleNamespace(current_epoch=epoch, max_epochs=5, is_global_zero=True), model)
    assert written == [1, 3, 4]
    cb.on_train_epoch_end(SimpleNamespace(current_epoch=3, max_epochs=5, is_global_zero=False), model)  # rank > 0
    dcgan = DCGAN(latent_dim=8, ngf=4, ndf=4, resolution=32)
    cb.on_train_epoch_end(SimpleNamespace(current_epoch=4, max_epochs=5, is_global_zero=True), dcgan)  # not a k-GAN
    assert written == [1, 3, 4]


def test_models_do_not_import_callbacks():
    import ast

    models_dir = Path(__file__).resolve().parents[1] / "src" / "gan_interp" / "models"
    imported = {
        (path.name, name)
        for path in models_dir.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        for name in (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else []
        )
    }
    assert ("kgan.py", "gan_interp.models.kgan_partition") in imported  # the walk sees imports
    assert sorted(i for i in imported if i[1].startswith("gan_interp.callbacks")) == []
