"""Shared test fixtures: compose Hydra configs with every path inside a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from gan_interp.paths import config_dir

# Tests use tiny tensors: one intra-op thread is faster and avoids oversubscribing a 2-core box.
torch.set_num_threads(1)

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def compose_config(tmp_path: Path, overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with outputs and caches under ``tmp_path``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            config_name=config_name,
            overrides=[
                f"paths.output_dir={tmp_path / 'run'}",
                f"paths.cache_dir={tmp_path / 'cache'}",
                f"paths.data_dir={tmp_path / 'data'}",
                f"paths.root_dir={tmp_path}",
                *(overrides or []),
            ],
        )
    with open_dict(cfg):
        cfg.trainer.enable_model_summary = False
        if cfg.get("callbacks") and "rich_progress_bar" in cfg.callbacks:
            del cfg.callbacks["rich_progress_bar"]  # plain output in test logs
        cfg.trainer.enable_progress_bar = False
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    """``make_cfg([...overrides])`` -> composed config rooted in this test's tmp dir."""
    return lambda overrides=None, config_name="train": compose_config(tmp_path, overrides, config_name)


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    yield
    from gan_interp.logging_utils import finish_wandb

    finish_wandb()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run only where CUDA is present (skipped with a reason elsewhere)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marker: gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
