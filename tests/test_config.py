"""Config composition and one-line validation errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan_interp.config import check_group_choices, group_options, validate_config
from gan_interp.errors import ConfigError
from gan_interp.paths import config_dir

DATA_NAMES = ["fake", "fashion_mnist", "folder", "imdb", "lfw", "synthetic_posters"]


def test_groups_offer_the_documented_choices():
    conf = config_dir()
    assert group_options(conf, "data") == DATA_NAMES
    assert {"dcgan", "stylegan_lite", "kgan"} <= set(group_options(conf, "model"))
    assert {"wandb", "tensorboard", "csv", "none"} <= set(group_options(conf, "logger"))


@pytest.mark.parametrize("data", DATA_NAMES)
def test_every_data_config_composes_and_instantiates(make_cfg, data):
    cfg = make_cfg([f"data={data}", "model=dcgan"])
    OmegaConf.resolve(cfg)
    assert cfg.data.name == data and cfg.model.resolution == cfg.data.resolution
    assert cfg.model.channels == cfg.data.channels
    dm = instantiate(cfg.data)
    assert dm.resolution == cfg.data.resolution
    validate_config(cfg)


def test_defaults_are_dcgan_on_synthetic_posters_with_wandb(make_cfg):
    cfg = make_cfg()
    assert (cfg.model.name, cfg.data.name) == ("dcgan", "synthetic_posters")
    assert list(cfg.logger) == ["wandb", "csv"]  # the CSV log beside W&B: the review page's curves
    assert cfg.model.lr == 2e-4 and list(cfg.model.betas) == [0.5, 0.999] and cfg.model.latent_dim == 100


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["model=dcgna"], "model='dcgna' is not a known model"),
        (["-m", "model=dcgan,stylegan"], "model='stylegan' is not a known model"),
        (["data=imbd"], "data='imbd' is not a known data"),
        (["logger=[wandb,csvv]"], "logger='csvv' is not a known logger"),  # a list of options
    ],
)
def test_unknown_group_choice_is_one_line(argv, needle):
    with pytest.raises(ConfigError) as err:
        check_group_choices(argv, config_dir())
    assert needle in str(err.value) and "\n" not in str(err.value) and "choose one of" in str(err.value)


def test_known_choices_and_plain_overrides_pass():
    check_group_choices(["model=dcgan,kgan", "data=fake", "trainer.max_epochs=3", "+foo=bar", "seed=0,1"], config_dir())
    check_group_choices(["logger=[wandb,csv]", "logger=[]", "tags=[a,b]"], config_dir())


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["model.lr=-0.001"], "model.lr=-0.001 must be > 0"),
        (["model.lr=abc"], "model.lr='abc' must be a float"),
        (["data.resolution=48"], "data.resolution=48 cannot be made by model dcgan"),
        (["data.batch_size=0"], "data.batch_size=0 must be >= 1"),
        (["data.val_fraction=1.5"], "data.val_fraction=1.5 must be in [0, 1)"),
        (["trainer.precision=fp8"], "trainer.precision='fp8' is not a Lightning precision"),
        (["model.betas=[0.5,1.5]"], "model.betas[1]=1.5 must be in [0, 1)"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0 must be >= 1"),
        (["trainer.max_epochs=-1"], "trainer.max_epochs=-1 must be >= 1 (to run by steps instead, set"),
        (["trainer.max_epochs=null"], "trainer.max_epochs=None must be >= 1"),
        (["trainer.max_epochs=-1", "trainer.max_steps=0"], "trainer.max_steps=0 must be >= 1"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_field(make_cfg, overrides, needle):
    cfg = make_cfg(["data=fake", *overrides])
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_run_must_end_by_epochs_or_by_explicit_steps(make_cfg):
    validate_config(make_cfg(["data=fake", "trainer.max_epochs=1"]))
    validate_config(make_cfg(["data=fake", "trainer.max_epochs=-1", "trainer.max_steps=40"]))  # by steps
    validate_config(make_cfg(["data=fake", "trainer.max_epochs=3", "trainer.max_steps=40"]))  # whichever first
    assert make_cfg(["data=fake"]).trainer.max_steps == -1  # default: epochs decide


@pytest.mark.parametrize(
    "override, needle",
    [
        ("callbacks.model_checkpoint.every_n_epochs=-1", "every_n_epochs=-1 and every_n_train_steps=0 must be >= 0"),
        ("callbacks.best_checkpoint.mode=lowest", "callbacks.best_checkpoint.mode='lowest' must be min or max"),
    ],
)
def test_bad_checkpoint_policy_is_a_one_line_error(make_cfg, override, needle):
    from gan_interp.train import build

    with pytest.raises(ConfigError) as err:
        build(make_cfg(["data=fake", "logger=none", override]))
    assert needle in str(err.value) and "\n" not in str(err.value)


def _run_cli(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "gan_interp.train", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"},
    )


def test_cli_wrong_model_name_exits_2_with_one_line(tmp_path):
    proc = _run_cli(["model=dcgna"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: model='dcgna' is not a known model; choose one of: "
        "dcgan, dcgan_stable, kgan, stylegan_lite, stylegan_lite_cpu"
    ]


def test_cli_bad_value_and_missing_data_are_one_line(tmp_path):
    proc = _run_cli(["data=fake", "model.lr=-1", "logger=none"], tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: model.lr=-1 must be > 0 (e.g. model.lr=2e-4)"], proc.stderr
    assert "Traceback" not in proc.stderr

    proc = _run_cli(["data=imdb", f"data.root={tmp_path}/no_posters", "logger=none"], tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "imdb data not found" in errors[0] and "set data.root=" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
