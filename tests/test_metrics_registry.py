"""The metrics registry: declared needs decide what the runner collects; names and options are checked."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from gan_interp.data import GANDataModule
from gan_interp.data.sources import FakeSource
from gan_interp.errors import ConfigError
from gan_interp.metrics.registry import METRICS, MetricSkipped, Needs, get_metric, metric_names, register_metric
from gan_interp.metrics.runner import evaluate
from gan_interp.metrics.settings import MetricsSettings
from gan_interp.models import DCGAN

BUILTIN = ["quality", "mmd", "c2st", "fid", "kid", "is", "memorisation", "ssim", "prdc"]


@pytest.fixture(scope="module")
def dm(tmp_path_factory) -> GANDataModule:
    d = GANDataModule(
        FakeSource(n=64, seed=1),
        resolution=32,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        batch_size=16,
        val_fraction=0.25,
        test_fraction=0.0,
    )
    d.setup()
    return d


@pytest.fixture
def toys():
    """Toy metrics that report what the runner collected for them."""
    seen: dict[str, dict] = {}

    def snapshot(name, ctx):
        seen[name] = {s: set(c.kept) | ({"image_stats"} if c.quality else set()) for s, c in ctx.streams.items()}
        seen[name]["fx"] = ctx.fx is not None

    @register_metric("toy_fake_pixels", needs=("pixels",), streams=("fake",))
    def _pixels(ctx) -> dict[str, float]:
        snapshot("toy_fake_pixels", ctx)
        return {"toy_mean": float(ctx.fake("pixels").mean())}

    @register_metric("toy_space", spaces=("images", "features"))
    def _space(ctx, space: str, scale: float = 1.0) -> dict[str, float]:
        snapshot("toy_space", ctx)
        return {"toy_n": scale * len(ctx.real(space))}

    @register_metric("toy_skip", needs=("image_stats",))
    def _skip(ctx) -> dict[str, float]:
        raise MetricSkipped("nothing to say")

    yield seen
    for name in ("toy_fake_pixels", "toy_space", "toy_skip"):
        METRICS.pop(name, None)


def test_builtin_metrics_run_in_a_fixed_order_and_declare_their_needs():
    assert metric_names() == BUILTIN
    assert get_metric("quality").needs_for({}) == Needs(frozenset({"image_stats"}), frozenset({"image_stats"}))
    assert get_metric("mmd").needs_for(get_metric("mmd").check({"space": "features"})) == Needs(
        frozenset({"features"}), frozenset({"features"})
    )
    assert get_metric("c2st").needs_for(get_metric("c2st").check({})) == Needs(
        frozenset({"images"}), frozenset({"images"})
    )
    assert get_metric("fid").needs_for({}) == Needs(frozenset({"features"}), frozenset({"features"}))
    assert get_metric("is").needs_for({}) == Needs(frozenset(), frozenset({"logits"}))
    mem = get_metric("memorisation")
    assert mem.needs_for(mem.check({})) == Needs(frozenset(), frozenset({"pixels"}), reference=True)
    assert mem.option_names() == ["space", "n_train", "quantile", "chunk"]  # own + forwarded to memorisation_score
    both = {"ssim": "images", "prdc": "features"}  # two-sample: both streams
    for name, rep in both.items():
        assert get_metric(name).needs_for(get_metric(name).check({})) == Needs(frozenset({rep}), frozenset({rep}))
    assert get_metric("ssim").option_names() == ["queries", "candidates", "pairs", "kernel_size", "sigma"]
    assert get_metric("prdc").option_names() == ["k_precision_recall", "k_density_coverage", "chunk"]


def test_only_the_needed_representations_are_collected(dm, toys):
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32)
    res = evaluate(model, dm, MetricsSettings(metrics={"toy_fake_pixels": {}}, n=20, batch_size=8))
    assert toys["toy_fake_pixels"] == {"real": set(), "fake": {"pixels"}, "fx": False}  # no feature net built
    assert (
        set(res.values) == {"toy_mean"} and res.info["features"] is None and res.info["metrics"] == ["toy_fake_pixels"]
    )

    res = evaluate(model, dm, MetricsSettings(metrics={"toy_space": {"scale": 2.0}}, n=20, batch_size=8))
    assert toys["toy_space"] == {"real": {"images"}, "fake": {"images"}, "fx": False}  # the default space: images
    assert res.values == {"toy_n": 40.0}

    settings = MetricsSettings(
        metrics={"toy_space": {"space": "features"}, "toy_fake_pixels": {}, "quality": {}},
        n=20,
        batch_size=8,
        features="pixels",
    )
    res = evaluate(model, dm, settings)
    assert toys["toy_space"] == {
        "real": {"features", "image_stats"},
        "fake": {"features", "pixels", "image_stats"},
        "fx": True,
    }
    assert res.info["features"] == "pixels" and "quality_tv_ratio" in res.values


def test_a_metric_that_cannot_run_is_recorded_as_skipped(dm, toys):
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32)
    res = evaluate(model, dm, MetricsSettings(metrics={"toy_skip": {}, "toy_fake_pixels": {}}, n=8, batch_size=8))
    assert res.info["skipped"] == {"toy_skip": "nothing to say"} and set(res.values) == {"toy_mean"}


def test_unknown_names_and_options_are_one_line_config_errors(toys):
    with pytest.raises(ConfigError, match="metrics.metrics.toy is not a known metric; choose from: quality, mmd, "):
        MetricsSettings(metrics={"toy": {}})
    with pytest.raises(
        ConfigError, match="metrics.metrics.toy_space.scal is not an option of metric toy_space; options: space, scale"
    ):
        MetricsSettings(metrics={"toy_space": {"scal": 2}})
    with pytest.raises(ConfigError, match="metrics.metrics.toy_space.space='pixels' must be one of images, features"):
        MetricsSettings(metrics={"toy_space": {"space": "pixels"}})
    with pytest.raises(
        ConfigError, match="metrics.metrics.fid is not an option|metrics.metrics.fid.x is not an option"
    ):
        MetricsSettings(metrics={"fid": {"x": 1}})
    with pytest.raises(ConfigError, match="metrics.metrics.mmd=3 must be a mapping of options"):
        MetricsSettings(metrics={"mmd": 3})
    with pytest.raises(ValueError, match="unknown representations"):
        register_metric("toy_bad", needs=("voxels",))
    assert MetricsSettings(metrics={"mmd": False, "quality": None}).metrics == {"quality": {}}


def test_config_errors_in_the_metrics_group_stay_one_line_through_hydra(make_cfg):
    from gan_interp.train import scheduled_callbacks

    with pytest.raises(ConfigError, match="metrics.metrics.lpips is not a known metric"):
        scheduled_callbacks(make_cfg(["probes=none", "+metrics.metrics.lpips={}"]))
    with pytest.raises(ConfigError, match="metrics.real_split='holdout' must be one of train, val, test"):
        scheduled_callbacks(make_cfg(["probes=none", "metrics.real_split=holdout"]))


@pytest.mark.parametrize("name", ["default", "all", "study"])
def test_metrics_configs_instantiate_the_settings(make_cfg, name):
    settings = instantiate(make_cfg([f"metrics={name}"]).metrics)
    assert isinstance(settings, MetricsSettings) and settings.metrics
    assert set(settings.metrics) <= set(BUILTIN) and settings.cache_dir and isinstance(settings.metrics["mmd"], dict)
    if name != "default":
        assert settings.n == 1024 and settings.domain == {"steps": 400, "dim": 64, "input_size": 32, "n_clusters": 10}
    # seed 001: generated vs held-out real images; the committed studies stay on train until re-run (issue 12)
    assert settings.real_split == ("train" if name == "study" else "test")
    assert settings.heldout_splits == ("val", "test")  # memorisation's reference, as before


def test_the_default_data_holds_enough_held_out_images_for_the_metric_presets(make_cfg):
    from gan_interp.data.datamodule import make_split

    for name in ("default", "all"):
        cfg = make_cfg([f"metrics={name}"])
        data = cfg.data
        split = make_split(data.source.n, data.val_fraction, data.test_fraction, data.split_seed)
        assert len(split[cfg.metrics.real_split]) >= cfg.metrics.n, name
        assert len(split["train"]) > 1843  # more training posters than the old preset (2048, 5% val, 5% test)


def test_fid_kid_is_as_three_metrics_equal_one_streaming_pass():
    """fid, kid and is read the kept per-batch features/logits: bit-identical to the single FeatureMetrics
    the runner used to feed while streaming (same batches, same global RNG draws for KID and IS)."""
    from types import SimpleNamespace

    from gan_interp.metrics import builtin
    from gan_interp.metrics.fid import FeatureMetrics

    g = torch.Generator().manual_seed(0)
    kept = {
        (s, r): [torch.randn(8, 6, generator=g) for _ in range(3)]
        for s in ("real", "fake")
        for r in ("features", "logits")
    }
    ctx = SimpleNamespace(batches=lambda stream, rep: kept[(stream, rep)], fx=object())
    one = FeatureMetrics(6, kid_subsets=4, kid_subset_size=8, is_splits=2)
    for feats in kept[("real", "features")]:
        one.update_real(feats)
    for feats, logits in zip(kept[("fake", "features")], kept[("fake", "logits")]):
        one.update_fake(feats, logits)
    torch.manual_seed(5)
    expected = one.compute()
    torch.manual_seed(5)
    got = {**builtin.fid(ctx), **builtin.kid(ctx, subsets=4, subset_size=8), **builtin.inception_score(ctx, splits=2)}
    assert got == expected and list(got) == ["fid", "kid_mean", "kid_std", "is_mean", "is_std"]


@pytest.mark.parametrize("experiment", ["arch_compare", "kgan_baselines", "probes_over_epochs"])
def test_the_committed_studies_keep_their_data_and_reference(make_cfg, experiment):
    cfg = make_cfg([f"experiment={experiment}"])
    assert (cfg.data.source.n, cfg.data.val_fraction, cfg.data.test_fraction) == (2048, 0.05, 0.05)
    assert cfg.metrics.real_split == "train"  # until they are re-run at the reference models' length


def test_the_dissection_study_keeps_its_data():
    from omegaconf import OmegaConf

    from gan_interp.paths import config_dir

    study = OmegaConf.load(config_dir().parent / "experiments" / "dissection" / "config.yaml")
    assert {"data.source.n=2048", "data.test_fraction=0.05"} <= set(study.train_overrides)
