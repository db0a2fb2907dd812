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
from gan_interp.models.kgan import KGAN, latent_uniforms
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


def test_fast_dev_run_trains_every_member_on_a_full_batch_of_its_cell_and_writes_epoch_images(make_cfg):
    cfg = make_cfg([*TINY, EPOCH_IMAGES, "++trainer.fast_dev_run=true"])
    metrics = train(cfg)
    assert metrics["g_steps"] == 1.0  # generator round on batch 0 (then every n_critic batches)
    # 64 fake images, 48 for training: 3 balanced cells of 16; a batch holds 16 images of every cell
    assert [metrics[f"kgan/cell_size/m{j}"] for j in range(3)] == [16.0, 16.0, 16.0]
    assert [metrics[f"train/m{j}/batch_rows"] for j in range(3)] == [16.0, 16.0, 16.0]
    for j in range(3):
        assert torch.isfinite(torch.tensor(metrics[f"train/m{j}/d_loss"])) and metrics[f"train/m{j}/gp"] >= 0
        assert torch.isfinite(torch.tensor(metrics[f"train/m{j}/g_loss"]))
    # the first build: nothing moved yet
    assert metrics["kgan/rows_changed"] == 0.0 and metrics["kgan/site_shift"] == 0.0 and metrics["kgan/ot_cost"] > 0
    out = Path(cfg.paths.output_dir) / "kgan" / "epoch_000"
    assert {p.name for p in out.iterdir()} == {
        "cell_medoids.png",
        "cell_sites.png",
        "samples_m0.png",
        "samples_m1.png",
        "samples_m2.png",
        "partition.json",
    }
    info = json.loads((out / "partition.json").read_text())
    split = json.loads((Path(cfg.paths.output_dir) / "data_split.json").read_text())
    assert info["cell_sizes"] == [16, 16, 16] and all(r in split["train"] for r in info["medoid_rows"])
    assert info["sites_from"] == "generated" and info["rows_changed"] == 0.0 and "site_shift/m2" in info


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


def test_generate_routes_by_its_own_draw_and_members_see_the_full_latent():
    torch.manual_seed(0)
    m = tiny_kgan().eval()
    z = m.sample_z(1200, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x1, x2 = m.generate(z), m.generate(z)
    assert x1.shape == (1200, 3, 32, 32) and torch.equal(x1, x2) and x1.abs().max() <= 1
    member = m.route_members(z)
    assert torch.equal(member, m.route_members(z)) and torch.equal(member[:7], m.route_members(z[:7]))  # row-local
    for j in range(3):
        rows = member == j
        assert 330 < int(rows.sum()) < 470  # balanced cells: ~400 each
        with torch.no_grad():  # the member sees z unchanged (no coordinate re-standardised)
            assert torch.allclose(x1[rows], m.generate(z[rows], member=j), atol=1e-6)
    # the member is not carried by a latent coordinate: z[:, 0] (or any) says nothing about it
    for d in (0, 1, 7):
        low = member[z[:, d] < 0].float()
        share = [float((member[z[:, d] < 0] == j).float().mean()) for j in range(3)]
        assert low.numel() > 400 and all(abs(s - 1 / 3) < 0.08 for s in share), (d, share)
    # traversing dim 0 of one latent keeps the draw a function of the whole latent, not of a bin of z[:, 0]
    walk = z[:1].repeat(200, 1)
    walk[:, 0] = torch.linspace(-3, 3, 200)
    assert len(set(m.route_members(walk).tolist())) == 3  # not monotone bins: all members along the walk
    # unequal cell weights change the shares; member tensors pick rows explicitly
    m.partition.cell_weights.copy_(torch.tensor([0.6, 0.2, 0.2]))
    assert abs(float((m.route_members(z) == 0).float().mean()) - 0.6) < 0.05
    pick = torch.tensor([2, 0, 1])
    with torch.no_grad():
        mixed = m.generate(z[:3], member=pick)
        assert all(
            torch.allclose(mixed[i], m.generate(z[i : i + 1], member=int(pick[i]))[0], atol=1e-6) for i in range(3)
        )
    # the draw is its own seed stream: another routing_seed, other members; k=1: always member 0
    other = tiny_kgan(routing_seed=1)
    assert not torch.equal(other.route_members(z), tiny_kgan().route_members(z))
    assert int(tiny_kgan(k=1).route_members(z).max()) == 0


def test_latent_uniforms_are_uniform_and_keyed_by_the_row():
    z = torch.randn(4000, 16, generator=torch.Generator().manual_seed(5))
    u = latent_uniforms(z, seed=3)
    assert u.dtype == torch.float64 and float(u.min()) > 0 and float(u.max()) < 1
    hist = torch.histc(u.float(), bins=10, min=0, max=1)
    assert float(hist.min()) > 330 and float(hist.max()) < 470  # ~400 per tenth
    assert abs(float(torch.corrcoef(torch.stack([u.float(), z[:, 0]]))[0, 1])) < 0.05
    z2 = z.clone()
    z2[0, 5] += 1e-3  # one coordinate of one row: only that row's draw changes
    v = latent_uniforms(z2, seed=3)
    assert v[0] != u[0] and torch.equal(v[1:], u[1:])


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


def test_grouped_gradient_penalty_is_every_members_own():
    # k critics side by side (grouped layout): the penalty of member j equals member j's penalty alone,
    # with the same interpolation weight
    torch.manual_seed(0)
    m = tiny_kgan(k=3)
    real, fake = torch.rand(5, 9, 32, 32) * 2 - 1, torch.rand(5, 9, 32, 32) * 2 - 1
    gp = losses.gradient_penalty(m.critics, real, fake, generator=torch.Generator().manual_seed(1), groups=3)
    alpha = torch.rand(5, 3, generator=torch.Generator().manual_seed(1))
    assert gp.shape == (5, 3)
    for j in range(3):
        a = alpha[:, j].view(5, 1, 1, 1)
        x_hat = (a * real[:, 3 * j : 3 * j + 3] + (1 - a) * fake[:, 3 * j : 3 * j + 3]).requires_grad_(True)
        (grad,) = torch.autograd.grad(m.members[j].critic_scores(x_hat).sum(), x_hat)
        assert torch.allclose(gp[:, j], (grad.flatten(1).norm(dim=1) - 1) ** 2, rtol=1e-4)


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
    first_build = {"rows_changed": 0.0, "rows_changed_fraction": 0.0, "site_shift": 0.0}
    first_build |= {"site_shift/m0": 0.0, "site_shift/m1": 0.0}
    assert part.stats == pytest.approx({"ot_cost": spread, "reseeded": 0.0} | first_build)
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
    with pytest.raises(ConfigError, match="model.sites_from='both'"):
        tiny_kgan(sites_from="both")
    with pytest.raises(ConfigError, match="model.site_samples=0"):
        tiny_kgan(site_samples=0)
    from types import SimpleNamespace

    ddp = tiny_kgan()
    ddp._trainer = SimpleNamespace(world_size=2, datamodule=None)
    with pytest.raises(ConfigError, match="trains on one device.*trainer.devices=1"):
        ddp.setup("fit")


def _fit_one_batch(model: KGAN, batch: dict, tmp_path) -> object:
    import lightning as L
    from torch.utils.data import DataLoader

    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, train_dataloaders=DataLoader([batch], batch_size=None))
    return trainer


def test_training_step_trains_every_member_on_its_own_cell_block(tmp_path):
    torch.manual_seed(0)
    m = tiny_kgan(k=3)
    m.partition.row_to_member = torch.tensor([0, 0, 1, 1, 2, 2])
    m.partition.ready.fill_(True)
    m.partition.epoch = 0  # partition of epoch 0 already there: no datamodule needed
    batch = {"image": torch.rand(6, 3, 32, 32) * 2 - 1, "index": torch.arange(6)}  # cell-major, 2 rows each
    before = [[p.clone() for p in member.parameters()] for member in m.members]
    trainer = _fit_one_batch(m, batch, tmp_path)
    for old, member in zip(before, m.members):  # every member's generator and critic moved
        changed = [not torch.equal(a, b) for a, b in zip(old, member.parameters())]
        n_g = len(list(member.generator.parameters()))
        assert any(changed[:n_g]) and any(changed[n_g:])
    assert m.g_steps == 1 and m.batches_seen == 1
    assert [float(trainer.callback_metrics[f"train/m{j}/batch_rows"]) for j in range(3)] == [2.0, 2.0, 2.0]
    # rows that are not k equal cell blocks in cell order: a one-line error naming the fix
    bad = {"image": batch["image"], "index": torch.tensor([0, 2, 1, 3, 4, 5])}
    with pytest.raises(ConfigError, match=r"per-cell batches.*cell counts \[2, 2, 2\].*GANDataModule"):
        _fit_one_batch(_ready(tiny_kgan(k=3)), bad, tmp_path)


def _ready(m: KGAN) -> KGAN:
    m.partition.row_to_member = torch.tensor([0, 0, 1, 1, 2, 2])
    m.partition.ready.fill_(True)
    m.partition.epoch = 0
    return m


def test_one_grouped_step_is_k_member_steps():
    # known answer: the grouped critic/generator losses give every member exactly the gradients of its own
    # WGAN-GP losses computed on plain (groups=1) nets with the same weights, inputs and interpolation weights
    from gan_interp.models.kgan_nets import group_slice, make_critic, make_generator, to_grouped

    torch.manual_seed(0)
    m = tiny_kgan(k=3)
    real = torch.rand(3, 4, 3, 32, 32) * 2 - 1  # [member, row, ...]
    z = torch.randn(4, 3 * 8)
    fake = m.generators(z)
    torch.manual_seed(2)  # the penalty's interpolation weights: the first draw of this seed
    loss, per_member, _, _ = losses.wgan_gp_critic_losses(m.critics, to_grouped(real, 3), fake.detach(), 10.0, 3)
    assert per_member.shape == (3,) and torch.allclose(loss, per_member.sum())
    grads = torch.autograd.grad(loss, list(m.critics.parameters()))
    alpha = torch.rand(4, 3, generator=torch.Generator().manual_seed(2))
    for j in range(3):
        d = make_critic("thesis", 4, 3, 32)
        d.load_state_dict(m.members[j].discriminator.state_dict())
        g = make_generator("thesis", 8, 4, 3, 32)
        g.load_state_dict(m.members[j].generator.state_dict())
        fake_j = g(z[:, 8 * j : 8 * j + 8])
        assert torch.allclose(fake_j, fake[:, 3 * j : 3 * j + 3], atol=1e-6)  # train-mode BN: per member
        a = alpha[:, j].view(4, 1, 1, 1)
        x_hat = (a * real[j] + (1 - a) * fake_j.detach()).requires_grad_(True)
        (gx,) = torch.autograd.grad(d(x_hat).sum(), x_hat, create_graph=True)
        gp_j = ((gx.flatten(1).pow(2).sum(1) + 1e-12).sqrt() - 1).pow(2).mean()
        loss_j = d(fake_j).mean() - d(real[j]).mean() + 10 * gp_j
        grads_j = torch.autograd.grad(loss_j, list(d.parameters()))
        for grouped, own, (name, _) in zip(grads, grads_j, m.critics.named_parameters()):
            part = group_slice(m.critics.get_submodule(name.rsplit(".", 1)[0]), grouped, 3, j)
            assert torch.allclose(part, own, atol=1e-5, rtol=1e-4), name


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


def test_checkpoints_of_the_per_member_layout_load_for_probing_and_refuse_to_resume(tmp_path):
    from gan_interp.checkpoints import check_resume_checkpoint

    torch.manual_seed(0)
    trained = tiny_kgan(k=3, arch="thesis")
    with torch.no_grad():  # make the members differ visibly
        for j, member in enumerate(trained.members):
            member.generator.stages["fc"][2].running_mean.fill_(float(j))
    # the old layout: one module per member, members.<j>.generator|discriminator.<key> (+ the partition buffers)
    old = {
        f"members.{j}.{key}": v.clone() for j, mem in enumerate(trained.members) for key, v in mem.state_dict().items()
    }
    old |= {f"partition.{key}": v for key, v in trained.partition.state_dict().items()}
    fresh = tiny_kgan(k=3, arch="thesis")
    fresh.load_state_dict(old)  # strict: every grouped weight is rebuilt from the members'
    for key, value in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    z = fresh.sample_z(4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(fresh.eval().generate(z, member=2), trained.eval().generate(z, member=2))
    # resuming training from it: one line naming the fix
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": old, "epoch": 3, "global_step": 12}, path)
    assert (
        "per-member layout" in fresh.resume_error({"state_dict": old})
        and fresh.resume_error({"state_dict": {}}) is None
    )
    with pytest.raises(ConfigError, match=r"old.ckpt is a k-GAN checkpoint of the per-member layout.*start a new run"):
        check_resume_checkpoint(path, fresh)
