"""experiments/ studies: configs compose for every sweep job, helper known answers, scripts end to end."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from gan_interp.config import validate_config
from gan_interp.errors import ConfigError
from gan_interp.io import jsonable
from gan_interp.paths import config_dir
from gan_interp.report import study
from gan_interp.train import build

ROOT = config_dir().parent
EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


def sweep_jobs(make_cfg, experiment: str) -> list[list[str]]:
    """The override lists of every job of an experiment's sweep (cartesian product of sweeper params)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    keys = list(params)
    return [
        [f"{k}={v}" for k, v in zip(keys, combo)]
        for combo in itertools.product(*(str(params[k]).split(",") for k in keys))
    ]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_job_of_every_experiment_composes_and_builds_its_model(make_cfg, experiment):
    jobs = sweep_jobs(make_cfg, experiment)
    assert len(jobs) >= 2
    for job in jobs:
        cfg = make_cfg([f"experiment={experiment}", *job])
        validate_config(cfg)
        assert cfg.threads == 1 and cfg.data.resolution == 32
        model = hydra.utils.instantiate(cfg.model)
        assert model.generate(model.sample_z(2)).shape == (2, 3, 32, 32)


def test_experiment_sweeps_are_the_documented_ones(make_cfg):
    assert EXPERIMENTS == ["arch_compare", "kgan_baselines", "probes_over_epochs"]
    assert sweep_jobs(make_cfg, "arch_compare") == [
        [f"model={m}", f"seed={s}"] for m in ("dcgan", "stylegan_lite", "kgan") for s in (0, 1)
    ]
    assert sweep_jobs(make_cfg, "kgan_baselines") == [
        [f"+kgan_variant={v}", f"seed={s}"] for v in ("partitioned", "independent", "single") for s in (0, 1)
    ]
    variants = {
        v: make_cfg(["experiment=kgan_baselines", f"+kgan_variant={v}"]).model
        for v in ("partitioned", "independent", "single")
    }
    assert [(m.k, m.independent) for m in variants.values()] == [(3, False), (3, True), (1, False)]


def test_arch_compare_narrows_stylegan_lite_to_dcgan_size_only_inside_the_experiment(make_cfg):
    params = {}
    for name in ("dcgan", "stylegan_lite"):
        model = hydra.utils.instantiate(make_cfg(["experiment=arch_compare", f"model={name}"]).model)
        params[name] = sum(p.numel() for p in model.generator.parameters())
    assert abs(params["stylegan_lite"] / params["dcgan"] - 1) < 0.1
    assert make_cfg(["model=stylegan_lite"]).model.channel_base == 4096  # the model's own default is untouched
    assert make_cfg(["experiment=arch_compare", "model=stylegan_lite"]).model.channel_base == 2048


def test_threads_option_sets_torch_intra_op_threads(make_cfg):
    before = torch.get_num_threads()
    try:
        build(make_cfg(["data=fake", "threads=2", "logger=none", "callbacks=none", "probes=none", "metrics=none"]))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="threads=0 must be >= 1"):
        validate_config(make_cfg(["data=fake", "threads=0"]))


# -- helpers -------------------------------------------------------------------------------------
def test_mean_sd_fmt_and_tables_known_answers():
    assert study.mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert study.mean_sd([4.0, None, math.nan]) == (4.0, 0.0)
    m, s = study.mean_sd([])
    assert math.isnan(m) and math.isnan(s)
    assert study.fmt(study.MeanSD(0.25, 0.05)) == "0.250 ± 0.050"
    assert study.fmt(12345.0) == "1.23e+04" and study.fmt(0.5) == "0.500" and study.fmt(math.nan) == "n/a"
    assert study.fmt(30.0, 4, significant=True) == "30" and study.fmt(12345.678, 4, significant=True) == "1.235e+04"
    table = study.md_table([{"a": 1, "b": study.MeanSD(1.0, 0.5)}, {"a": "x"}], ["a", "b"])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 1.000 ± 0.500 |", "| x |  |"]
    expected = {"v": {"mean": 1.0, "sd": None}, "w": [None], "pair": [1.0, 2.0]}
    assert jsonable({"v": study.MeanSD(1.0, math.nan), "w": [math.inf], "pair": (1.0, 2.0)}) == expected


def test_job_dirs_sorts_by_job_number_and_names_an_empty_sweep(tmp_path):
    for name in ("10_b", "2_a", "multirun.yaml_dir_not_a_job"):
        (tmp_path / name).mkdir()
    assert [p.name for p in study.job_dirs(tmp_path)] == ["2_a", "10_b"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="has no job folders"):
        study.job_dirs(empty)


def test_probe_readings_known_answers():
    summaries = {
        "saliency": {"real": {"concept_ratio": {"figure": 2.0}, "center_mass_share": 0.3}},
        "directions": {
            "sefa": {"effect_ratio_vs_random": 1.5, "eigenvalue_share": [0.1, 0.2]},
            "ganspace": {"effect_ratio_vs_random": 0.9, "explained_variance_ratio": [0.3]},
        },
        "traversals": {"z_dim_change": {"0": 0.1, "1": 0.3}, "freeze_diversity": {"0": 0.1, "1": 0.3, "none": 0.4}},
        "actmax": {"pixel": {"start": [0.0, 1.0], "reached": [2.0, 2.0]}},
    }
    r = study.probe_readings(summaries)
    assert r["saliency/figure"] == 2.0 and math.isnan(r["saliency/orb"])
    assert r["SeFa effect / random"] == 1.5 and r["SeFa top-4 eig share"] == pytest.approx(0.3)
    assert r["z-dim change (mean)"] == pytest.approx(0.2)
    assert r["diversity frozen/free"] == pytest.approx(0.5)
    assert r["actmax gain"] == pytest.approx(1.5)


# -- the study scripts, end to end on tiny settings ------------------------------------------------
TINY = [
    "data.source.n=160",
    "data.val_fraction=0.2",
    "trainer.max_epochs=2",
    "hydra.launcher.n_jobs=1",
    "metrics.n=48",
    "metrics.domain.steps=10",
    "metrics.metrics.kid.subset_size=16",
    "metrics.metrics.c2st.epochs=1",
    "metrics.metrics.mmd.n_permutations=10",
    "probes.probes.directions.n_samples=16",
    "model.latent_dim=16",
]


def run_study(name: str, tmp_path: Path, extra: list[str]) -> dict:
    env = {**os.environ, "WANDB_MODE": "offline", "GAN_INTERP_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / name / "run.py"),
            "--sweep-dir",
            str(tmp_path / "sweep"),
            "--results-dir",
            str(tmp_path / "results"),
            *TINY,
            *extra,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (tmp_path / "sweep" / "report.html").is_file()
    assert (tmp_path / "results" / "results.md").is_file()
    return json.loads((tmp_path / "results" / "results.json").read_text())


def test_probes_over_epochs_script_tables_every_epoch_and_final_cka_is_one(tmp_path):
    res = run_study("probes_over_epochs", tmp_path, ["seed=0"])
    assert sorted(res["per_epoch"]) == ["1", "2"]
    last = res["per_epoch"]["2"]
    cka = {k: v["mean"] for k, v in last.items() if k.startswith("CKA ")}
    assert cka and all(v == pytest.approx(1.0, abs=1e-5) for v in cka.values())  # the final model vs itself
    assert {"CKA G.to_image", "CKA D.block0"} <= set(cka)
    assert math.isfinite(last["FID"]["mean"]) and math.isfinite(last["saliency/figure"]["mean"])
    text = (tmp_path / "results" / "results.md").read_text()
    assert "When each layer settles" in text and "| 2 |" in text
    assert (tmp_path / "results" / "figures" / "cka_to_final.png").is_file()
    from gan_interp.wandb_inspect import find_runs, inspect_run

    runs = [inspect_run(p) for p in find_runs(tmp_path / "sweep")]
    [trained] = [r for r in runs if r.job_type == "train"]
    assert trained.group.startswith("probes_over_epochs-") and "probes_over_epochs" in trained.tags
    [tables] = [r for r in runs if r.job_type == "study"]  # the results.md tables, in the sweep's group
    assert (tables.name, tables.group) == ("probes_over_epochs-tables", trained.group)
    assert {"study/metrics_after_each_epoch", "study/when_each_layer_settles"} <= set(tables.keys("table"))


def test_kgan_baselines_script_partition_and_specialisation(tmp_path):
    res = run_study("kgan_baselines", tmp_path, ["schedule.metrics.epochs=[0]", "seed=0"])
    variants = {v: runs[0] for v, runs in res["variants"].items()}
    assert set(variants) == {"partitioned (k=3)", "independent (k=3)", "single (k=1)"}
    assert variants["single (k=1)"]["specialisation"]["purity"] == [1.0]  # one member owns the only cell
    for v in ("partitioned (k=3)", "independent (k=3)"):
        spec = variants[v]["specialisation"]
        assert all(abs(sum(row) - 1) < 1e-6 for row in spec["member_to_cell_fraction"])
        sizes = variants[v]["partition"][-1]["cell_sizes"]
        assert max(sizes) - min(sizes) <= 1  # balanced cells
    assert variants["partitioned (k=3)"]["partition"][1]["rows_moved"] is not None


def test_arch_compare_script_compares_three_models(tmp_path):
    res = run_study("arch_compare", tmp_path, ["seed=0", "schedule.metrics.epochs=[0]", "schedule.probes.epochs=[0]"])
    assert set(res["models"]) == {"dcgan", "stylegan_lite", "kgan"}
    rows = {r["model"]: r for r in res["tables"]["final_metrics"]}
    assert all(math.isfinite(rows[m]["FID (domain)"]["mean"]) for m in rows)
    probes = {r["probe reading"] for r in res["tables"]["probes"]}
    assert {"SeFa effect / random", "saliency/figure", "NN dist gen/val"} <= probes


@pytest.mark.parametrize("name", sorted(p.parent.name for p in (ROOT / "experiments").glob("*/results.md")))
def test_each_experiment_readme_quotes_every_table_its_script_wrote(name):
    import re

    results = (ROOT / "experiments" / name / "results.md").read_text()
    readme = (ROOT / "experiments" / name / "README.md").read_text()
    tables = re.findall(r"((?:\|.*\|\n)+)", results)
    assert tables, f"{name}/results.md has no tables"
    missing = [t.splitlines()[0] for t in tables if t not in readme]
    assert not missing, f"experiments/{name}/README.md is out of date with results.md (tables starting {missing})"


def test_reference_models_script_trains_checks_the_bar_and_reuses_finished_runs(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "GAN_INTERP_CACHE": str(tmp_path / "cache")}
    cmd = [
        sys.executable,
        str(ROOT / "experiments" / "reference_models" / "run.py"),
        "--models",
        "dcgan",
        "--out-dir",
        str(tmp_path / "out"),
        "--results-dir",
        str(tmp_path / "results"),
        "--eval-n",
        "48",
        "--set",
        "evaluation.domain.steps=40",
        "--set",
        "evaluation.metrics.c2st.epochs=2",
        "--set",
        "pixel_c2st.c2st.epochs=2",
        "data.source.n=480",
        "trainer.max_epochs=1",
        "model.ngf=8",
        "model.ndf=8",
        "threads=1",
    ]
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    res = json.loads((tmp_path / "results" / "results.json").read_text())
    bar = res["bar"]["dcgan"]
    assert 0.0 <= bar["c2st_conv"] <= 1.0 and bar["fid"] > 0 and bar["fid_floor"] > 0
    assert bar["fid_over_floor"] == pytest.approx(bar["fid"] / bar["fid_floor"])
    assert bar["passed"] is False  # one epoch of a width-8 DCGAN cannot pass; the verdict is computed, not set
    assert res["training"]["dcgan"]["preset"] == "dcgan_stable" and res["training"]["dcgan"]["g_steps"] > 0
    index = json.loads((tmp_path / "out" / "checkpoints.json").read_text())
    assert Path(index["dcgan"]["checkpoint"]).is_file() and index["dcgan"]["passed_bar"] is False
    assert "| dcgan | dcgan_stable |" in (tmp_path / "results" / "results.md").read_text()
    assert (tmp_path / "results" / "figures" / "dcgan_samples.png").is_file()
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert again.returncode == 0 and "dcgan: reusing the finished run" in again.stdout


RESULTS_MD = """# A study

Final metrics (mean ± sd over seeds):

| model | FID | seeds |
|---|---|---|
| dcgan | 1.500 ± 0.100 | 2 |
| kgan | n/a | 2 |

Notes:

| what | value |
|---|---|
| floor | 1.20e-05 |
"""


def test_study_tables_are_read_back_typed_and_logged_in_a_study_run(tmp_path):
    from gan_interp.wandb_inspect import inspect_run
    from gan_interp.wandb_tables import log_study_tables, markdown_tables, typed_columns

    tables = markdown_tables(RESULTS_MD)
    assert [(t.name, t.caption) for t in tables] == [
        ("final_metrics", "Final metrics (mean ± sd over seeds):"),
        ("notes", "Notes:"),
    ]
    assert typed_columns(tables[0]) == (
        ["model", "FID", "FID sd", "seeds"],
        [["dcgan", 1.5, 0.1, 2.0], ["kgan", None, None, 2.0]],
    )
    assert typed_columns(tables[1]) == (["what", "value"], [["floor", 1.2e-05]])
    (tmp_path / "results.md").write_text(RESULTS_MD)
    folder = log_study_tables(tmp_path / "sweep", tmp_path / "results.md", "unit", group="g")
    assert folder is not None and folder.is_relative_to(tmp_path / "sweep" / "wandb")
    run = inspect_run(folder)
    assert (run.job_type, run.group, run.name, run.exit_code) == ("study", "g", "unit-tables", 0)
    assert run.keys("table") == ["study/final_metrics", "study/notes"]
    staged = [Path(c["local_path"]) for a in run.artifacts for c in a["manifest"]["contents"]]
    assert staged and all(p.is_relative_to(tmp_path / "sweep" / "wandb") for p in staged)
