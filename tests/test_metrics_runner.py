"""compute_metrics end to end (known answers with replay/noise generators) and the MetricsCallback in training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from gan_interp.data import GANDataModule
from gan_interp.data.sources import FakeSource
from gan_interp.errors import ConfigError
from gan_interp.metrics.registry import normalise_metrics_cfg
from gan_interp.metrics.runner import compute_metrics, evaluate
from gan_interp.metrics.settings import MetricsSettings
from gan_interp.models import DCGAN
from gan_interp.train import train

TINY = ["data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=16"]
CHEAP = {"mmd": {"n_permutations": 100}, "c2st": {"epochs": 2, "min_steps": 40}, "quality": {}, "memorisation": {}}


class ReplayGenerator(nn.Module):
    """A 'generator' that returns training images (a perfect memoriser) or uniform noise."""

    def __init__(self, images: torch.Tensor, noise: bool = False) -> None:
        super().__init__()
        self.images, self.noise, self.latent_dim = images, noise, 1

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(len(self.images), (n, 1), generator=generator).float()

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        if self.noise:
            g = torch.Generator().manual_seed(int(z.sum().item()))
            return torch.rand(z.shape[0], *self.images.shape[1:], generator=g) * 2 - 1
        return self.images[z[:, 0].long()]


@pytest.fixture(scope="module")
def dm(tmp_path_factory) -> GANDataModule:
    d = GANDataModule(
        FakeSource(n=400, seed=3),
        resolution=16,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        batch_size=32,
        val_fraction=0.25,
        test_fraction=0.0,
    )
    d.setup()
    return d


def test_a_memorising_generator_matches_the_data_but_is_caught_copying(dm) -> None:
    model = ReplayGenerator(dm.images("train"))
    v = compute_metrics(model, dm, CHEAP, n=200, batch_size=64)
    assert v["mmd_p_value"] > 0.05 and abs(v["mmd2"]) < 0.01  # same distribution as the data ...
    assert abs(v["c2st_accuracy"] - 0.5) < 0.1 and v["c2st_p_value"] > 0.01
    assert abs(v["quality_tv_ratio"] - 1) < 0.1 and abs(v["quality_laplacian_var_ratio"] - 1) < 0.2
    assert v["nn_ratio"] < 0.01 and v["nn_copy_fraction"] == 1.0  # ... but every fake is a training image


def test_a_noise_generator_is_far_from_the_data(dm) -> None:
    model = ReplayGenerator(dm.images("train"), noise=True)
    v = compute_metrics(model, dm, CHEAP, n=200, batch_size=64)
    assert v["mmd_p_value"] == pytest.approx(1 / 101)  # no permutation reached it (the smallest possible p)
    assert v["mmd2"] > 0.005  # (RBF MMD in 768-d pixel space is small in absolute terms; ~0 for the replay)
    assert v["c2st_accuracy"] > 0.95 and v["c2st_p_value"] < 1e-6
    assert v["quality_noise_ratio"] > 5 and v["quality_tv_ratio"] > 5  # noise is noisier and rougher than smooth data
    assert v["nn_ratio"] > 1.3 and v["nn_copy_fraction"] < 0.2


def test_all_metrics_on_a_dcgan_with_domain_features(dm, tmp_path) -> None:
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32, channels=3)  # 32 px model, 16 px data: pooled inside
    model.generator = nn.Sequential(model.generator, nn.AdaptiveAvgPool2d(16))
    model.train()
    rng = torch.get_rng_state()
    metrics = {
        "mmd": {"space": "features", "n_permutations": 20},
        "c2st": {"space": "features", "epochs": 1, "min_steps": 5},
        "quality": {},
        "memorisation": {"space": "features"},
        "fid": {},
        "kid": {"subsets": 5},
        "is": {"splits": 2},
        "ssim": {"queries": 16, "pairs": 16},
        "prdc": {},
    }
    settings = MetricsSettings(
        metrics=metrics,
        n=48,
        batch_size=16,
        features="domain",
        cache_dir=str(tmp_path),
        domain={"steps": 10, "dim": 8, "input_size": 16},
    )
    res = evaluate(model, dm, settings, gallery_path=tmp_path / "nn.png")
    expected = {
        "mmd2",
        "mmd_p_value",
        "c2st_accuracy",
        "c2st_p_value",
        "fid",
        "kid_mean",
        "kid_std",
        "is_mean",
        "is_std",
        "nn_ratio",
        "nn_copy_fraction",
        "quality_tv_fake",
        "quality_tv_real",
        "quality_noise_ratio",
        "ssim_nn_fake",
        "ssim_nn_real",
        "ssim_pairs_fake",
        "ssim_pairs_real",
        "prdc_precision",
        "prdc_recall",
        "prdc_density",
        "prdc_coverage",
    }
    assert expected <= set(res.values)
    assert all(v == v for k, v in res.values.items() if k != "quality_laplacian_var_ratio")  # finite (no NaN)
    assert 1.0 <= res.values["is_mean"] <= 10.0 + 1e-6  # IS is between 1 and the number of pseudo-classes
    assert res.info["features"] == "domain-autoencoder" and res.info["n_fake"] == 48 and res.info["n_real"] == 48
    assert "trained on the real training images" in res.info["features_description"]
    assert (tmp_path / "nn.png").is_file()
    assert model.training  # mode restored
    assert torch.equal(torch.get_rng_state(), rng)  # training's random stream untouched


def test_the_held_out_reference_split_is_checked_and_recorded(dm, tmp_path, caplog) -> None:
    held = GANDataModule(
        FakeSource(n=200, seed=3),
        resolution=16,
        cache_dir=str(tmp_path),
        batch_size=32,
        val_fraction=0.1,
        test_fraction=0.2,
    )
    model = ReplayGenerator(held.images("train"))  # replays training images: held-out ones are the same distribution
    settings = MetricsSettings(metrics={"mmd": {"n_permutations": 50}, "prdc": {}}, n=64, real_split="test")
    with caplog.at_level("WARNING", logger="gan_interp.metrics.runner"):
        res = evaluate(model, held, settings)
    assert (res.info["real_split"], res.info["n_real"], res.info["n_fake"]) == ("test", 40, 64)
    [warning] = [r.getMessage() for r in caplog.records if "real images for n=64" in r.getMessage()]
    assert "the 'test' split has 40 real images" in warning and "raise data.test_fraction" in warning
    assert "\n" not in warning
    assert res.values["mmd_p_value"] > 0.05 and res.values["prdc_precision"] > 0.5
    with pytest.raises(ConfigError, match="metrics.real_split='test' has 0 images, .*; raise data.test_fraction"):
        evaluate(model, dm, MetricsSettings(metrics={"mmd": {}}, n=8, real_split="test"))  # dm: test_fraction=0


def test_ssim_and_prdc_are_skipped_where_they_cannot_run(tmp_path) -> None:
    tiny = GANDataModule(
        FakeSource(n=40, seed=3), resolution=8, cache_dir=str(tmp_path), val_fraction=0.0, test_fraction=0.0
    )
    settings = MetricsSettings(metrics={"ssim": {}, "prdc": {}}, n=5, features="pixels", pixel_size=4)
    res = evaluate(ReplayGenerator(tiny.images("train")), tiny, settings)
    assert res.values == {} and set(res.info["skipped"]) == {"ssim", "prdc"}
    assert "8 px images are smaller than the SSIM window" in res.info["skipped"]["ssim"]
    assert "k=5 nearest neighbours need more than 5" in res.info["skipped"]["prdc"]


def test_metric_config_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match="metrics.metrics.lpips is not a known metric"):
        normalise_metrics_cfg({"lpips": {}})
    with pytest.raises(ConfigError, match="space='images' must be one of pixels, features"):
        normalise_metrics_cfg({"mmd": {"space": "images"}})
    assert set(normalise_metrics_cfg("all")) == {
        "mmd",
        "c2st",
        "quality",
        "memorisation",
        "fid",
        "kid",
        "is",
        "ssim",
        "prdc",
    }
    assert normalise_metrics_cfg("mmd,quality") == {"mmd": {"space": "pixels"}, "quality": {}}
    with pytest.raises(
        ConfigError, match="metrics.metrics.mmd.n_perms is not an option of metric mmd; options: space, "
    ):
        normalise_metrics_cfg({"mmd": {"n_perms": 3}})
    with pytest.raises(ConfigError, match="metrics.n=2 is too small"):
        MetricsSettings(metrics={"mmd": {}}, n=2)
    with pytest.raises(ConfigError, match="metrics.features='incept' must be one of auto, inception, domain, pixels"):
        MetricsSettings(features="incept")
    with pytest.raises(ConfigError, match="metrics.real_split='heldout' must be one of train, val, test"):
        MetricsSettings(real_split="heldout")


def test_metrics_callback_in_training_writes_json_logs_and_final_metrics(make_cfg) -> None:
    cfg = make_cfg(
        [
            *TINY,
            "trainer.max_epochs=2",
            "logger=csv",
            "probes=none",
            "metrics=default",
            "metrics.n=24",
            "schedule.metrics.epochs=[0]",
            "metrics.metrics.c2st.epochs=1",
            "+metrics.metrics.c2st.min_steps=5",
            "metrics.metrics.mmd.n_permutations=20",
        ]
    )
    final = train(cfg)
    run = Path(cfg.paths.output_dir)
    files = sorted(p.name for p in (run / "metrics").glob("epoch_*.json"))
    assert files == ["epoch_000.json", "epoch_001.json"]  # the scheduled epoch + the end of training
    first, last = (json.loads((run / "metrics" / f).read_text()) for f in files)
    assert first["source"] == "train_epoch_end" and last["source"] == "train_end" and last["epoch"] == 1
    assert {"mmd2", "mmd_p_value", "c2st_accuracy", "quality_noise_fake"} <= set(last["values"])
    assert last["info"]["n_fake"] == 24 and last["g_steps"] == 6
    assert (last["info"]["real_split"], last["info"]["n_real"]) == ("test", 8)  # data=fake holds 8 test images
    assert final["metrics/mmd2"] == pytest.approx(last["values"]["mmd2"])  # also in <run>/metrics.json
    with (run / "csv" / "metrics.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("metrics/mmd2")]
    assert len(rows) == 2  # logged to the CSV logger at both evaluations


def test_fast_dev_run_skips_metrics(make_cfg) -> None:
    cfg = make_cfg([*TINY, "++trainer.fast_dev_run=true", "logger=none", "probes=none", "metrics=default"])
    final = train(cfg)
    assert not (Path(cfg.paths.output_dir) / "metrics").exists()
    assert not any(k.startswith("metrics/") for k in final)
