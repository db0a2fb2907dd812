"""FID/KID/IS through torchmetrics on pluggable features; feature extractor choice (never downloads)."""

from __future__ import annotations

import math
import urllib.request

import numpy as np
import pytest
import torch

from gan_interp.errors import ConfigError
from gan_interp.metrics import features as feat_mod
from gan_interp.metrics.features import build_feature_extractor, kmeans, train_domain_net
from gan_interp.metrics.fid import FeatureMetrics, fid_from_features, frechet_distance_gaussians


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, tmp_path):
    """Any attempt to download weights fails the test; the hub cache is an empty temp dir."""

    def refuse(*a, **k):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.delenv("GAN_INTERP_INCEPTION_WEIGHTS", raising=False)
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield


def test_fid_with_identity_features_matches_the_gaussian_closed_form() -> None:
    g = torch.Generator().manual_seed(0)
    d = 4
    a = torch.randn(20000, d, generator=g, dtype=torch.float64)
    mix = torch.tensor([[1.0, 0.3, 0, 0], [0, 0.8, 0, 0], [0, 0, 1.5, 0.2], [0, 0, 0, 0.5]], dtype=torch.float64)
    b = torch.randn(15000, d, generator=g, dtype=torch.float64) @ mix + torch.tensor(
        [0.5, -0.2, 0.0, 1.0], dtype=torch.float64
    )
    ours = fid_from_features(a, b)
    an, bn = a.numpy(), b.numpy()
    sample_form = frechet_distance_gaussians(an.mean(0), np.cov(an, rowvar=False), bn.mean(0), np.cov(bn, rowvar=False))
    assert ours == pytest.approx(sample_form, rel=1e-6)
    # and close to the population value ||mu||^2 + Tr(I + S - 2 S^{1/2}), S = mix^T mix
    s2 = (mix.T @ mix).numpy()
    population = frechet_distance_gaussians(np.zeros(d), np.eye(d), np.array([0.5, -0.2, 0.0, 1.0]), s2)
    assert ours == pytest.approx(population, abs=0.08)


def test_streaming_updates_equal_one_shot_and_kid_is_known_answers() -> None:
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(200, 3, generator=g), torch.randn(200, 3, generator=g) + 0.5
    m = FeatureMetrics(3, fid=True, kid=True, inception_score=False, kid_subsets=20, kid_subset_size=100)
    for r, f in zip(real.split(64), fake.split(64)):
        m.update_real(r)
        m.update_fake(f)
    out = m.compute()
    assert out["fid"] == pytest.approx(fid_from_features(real, fake), rel=1e-9)
    same = FeatureMetrics(3, fid=False, kid=True, inception_score=False, kid_subsets=20, kid_subset_size=500)
    same.update_real(torch.randn(1000, 3, generator=g))
    same.update_fake(torch.randn(1000, 3, generator=g))  # two samples of one distribution
    kid_same = same.compute()
    assert abs(kid_same["kid_mean"]) < 3 * kid_same["kid_std"] + 1e-3
    assert out["kid_mean"] > 0.5  # mean shift 0.5 in 3-d: cubic-kernel MMD ~ 1.3
    # IS: one-hot predictions spread evenly over k classes -> exp(KL) = k; identical predictions -> 1
    k = 5
    onehot = torch.eye(k).repeat(40, 1) * 50.0
    is_m = FeatureMetrics(k, fid=False, kid=False, inception_score=True, is_splits=1)
    is_m.update_fake(torch.zeros(200, k), onehot)
    assert is_m.compute()["is_mean"] == pytest.approx(k, rel=1e-6)
    flat = FeatureMetrics(k, fid=False, kid=False, inception_score=True, is_splits=1)
    flat.update_fake(torch.zeros(200, k), onehot[:1].repeat(200, 1))
    assert flat.compute()["is_mean"] == pytest.approx(1.0, rel=1e-6)


def _sample_two_blobs(b: int, g: torch.Generator) -> torch.Tensor:
    x = torch.full((b, 1, 16, 16), -1.0)
    bright = torch.rand(b, generator=g) < 0.5
    x[bright, :, 4:12, 4:12] = 1.0
    return x + 0.05 * torch.randn(x.shape, generator=g)


def test_domain_net_learns_and_clusters() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    net = train_domain_net(
        _sample_two_blobs,
        channels=1,
        steps=40,
        batch_size=32,
        dim=8,
        input_size=16,
        n_clusters=2,
        n_cluster_images=256,
        seed=0,
    )
    assert torch.equal(torch.get_rng_state(), before)  # training does not disturb the global RNG
    g = torch.Generator().manual_seed(5)
    x = _sample_two_blobs(64, g)
    bright = x[:, 0, 8, 8] > 0
    assign = net.logits(net(x)).argmax(1)
    assert (assign[bright] != assign[~bright][0]).all() and (
        assign[~bright] == assign[~bright][0]
    ).all()  # blobs = clusters
    cent = kmeans(torch.tensor([[0.0], [0.1], [10.0], [10.2]]), 2)
    assert sorted(cent.flatten().tolist()) == pytest.approx([0.05, 10.1])


def test_auto_without_cached_inception_uses_domain_features_and_says_so(tmp_path) -> None:
    from gan_interp.data import GANDataModule
    from gan_interp.data.sources import FakeSource

    dm = GANDataModule(
        FakeSource(n=48, seed=0, channels=1), resolution=16, channels=1, cache_dir=str(tmp_path / "cache"), batch_size=8
    )
    fx = build_feature_extractor("auto", dm, tmp_path / "fcache", domain={"steps": 5, "dim": 8, "input_size": 16})
    assert fx.name == "domain-autoencoder"
    assert "Inception weights not found" in fx.description
    feats, logits = fx(torch.zeros(3, 1, 16, 16))
    assert feats.shape == (3, 8) and logits is not None and logits.shape == (3, 10)
    cached = list((tmp_path / "fcache" / "feature_nets").glob("domain-*.pt"))
    assert len(cached) == 1
    torch.load(cached[0], weights_only=True)  # plain tensors + JSON-able meta
    again = build_feature_extractor("domain", dm, tmp_path / "fcache", domain={"steps": 5, "dim": 8, "input_size": 16})
    assert torch.allclose(again(torch.zeros(3, 1, 16, 16))[0], feats)  # loaded from the cache, same net
    with pytest.raises(ConfigError, match="no Inception weights on disk"):
        build_feature_extractor("inception", dm)
    with pytest.raises(ConfigError, match="must be one of"):
        build_feature_extractor("vgg", dm)
    px = build_feature_extractor("pixels", dm, pixel_size=4)
    assert px(torch.zeros(2, 1, 16, 16))[0].shape == (2, 16)


def test_cached_torchvision_inception_is_found_and_loaded_without_download(tmp_path) -> None:
    from torchvision.models import inception_v3

    ckpt_dir = tmp_path / "hub" / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    torch.save(
        inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(),
        ckpt_dir / feat_mod.TORCHVISION_WEIGHTS,
    )
    assert feat_mod.find_inception_weights() == ("torchvision", ckpt_dir / feat_mod.TORCHVISION_WEIGHTS)
    fx = build_feature_extractor("auto")
    assert fx.name == "inception-torchvision" and fx.num_features == 2048
    feats, logits = fx(torch.rand(2, 1, 32, 32) * 2 - 1)  # grayscale, small: resized to 299 RGB inside
    assert feats.shape == (2, 2048) and logits is not None and logits.shape == (2, 1000)
    assert math.isfinite(float(feats.sum()))
