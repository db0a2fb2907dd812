"""experiments/probe_scorecard/run.py end to end on tiny settings: a 1-epoch DCGAN, every check, both outputs."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gan_interp.errors import ConfigError
from gan_interp.paths import config_dir

ROOT = config_dir().parent
SCRIPT = ROOT / "experiments" / "probe_scorecard" / "run.py"
TRAIN = [
    "data.resolution=32",
    "data.source.n=640",  # test split 160 posters: the tiny check's 128 reals differ between seeds
    "trainer.max_epochs=1",
    "probes=none",
    "metrics=none",
    "logger=none",
    "threads=1",
]

ALL_CHECKS = ["saliency", "directions", "dissection", "two_sample", "memorisation", "actmax"]  # run.py CHECKS


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def test_scorecard_script_scores_a_reference_model_on_tiny_settings(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "GAN_INTERP_CACHE": str(tmp_path / "cache")}
    run_dir = tmp_path / "ref"
    _run([sys.executable, "-m", "gan_interp.train", *TRAIN, f"hydra.run.dir={run_dir}"], tmp_path, env)
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"dcgan": "ref/checkpoints/last.ckpt"}))  # relative to the JSON's folder
    out = tmp_path / "results"
    cmd = [sys.executable, str(SCRIPT), "--references", str(refs), "--tiny", "--results-dir", str(out)]
    _run([*cmd, "--cache-dir", str(tmp_path / "cache")], tmp_path, env)

    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["tiny"] is True and res["settings"]["checks"] == ALL_CHECKS
    rows = res["models"]["dcgan"]["rows"]
    families = {"saliency", "directions", "dissection", "two-sample", "memorisation", "neighbours", "actmax"}
    assert {r["probe"] for r in rows} == families
    # every row has a verdict computed from its criterion; None only where a reading cannot decide (e.g. a factor
    # the regressor cannot read), never for the two-sample / memorisation controls
    assert all(r["passed"] in (True, False, None) for r in rows)
    assert all(
        isinstance(r["passed"], bool) for r in rows if r["probe"] in ("two-sample", "memorisation", "neighbours")
    )
    by_reading = {r["reading"]: r for r in rows}
    for r in rows:
        if r["probe"] in ("memorisation", "neighbours"):  # a copying generator is caught, fresh posters are not
            assert r["passed"], r
    noorb = next(r for k, r in by_reading.items() if k.startswith("missing / excess") and "no-orb" in k)
    assert "orb" in noorb["details"]["no-orb"]["missing"]  # the concept reading names what the control lacks
    null_c2st = next(r for k, r in by_reading.items() if k.startswith("C2ST") and "held-out sampler" in k)
    assert len(null_c2st["details"]["null_p_values"]) == 3 and 0 <= null_c2st["details"]["ks_p"] <= 1
    text = (out / "results.md").read_text()
    assert "## dcgan" in text and "| probe | reading | reference | random init | planted | criterion | pass |" in text
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == len(rows) + 1 and all(line.count(" | ") == 6 for line in table)  # no stray pipes


def _script_module():
    spec = importlib.util.spec_from_file_location("probe_scorecard_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scorecard_script_reads_references_and_names_bad_input_in_one_line(tmp_path):
    run = _script_module()
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"dcgan": "ref/last.ckpt", "kgan": {"checkpoint": "/abs/k.ckpt", "bar": True}}))
    assert run.read_references(refs) == {"dcgan": tmp_path / "ref" / "last.ckpt", "kgan": Path("/abs/k.ckpt")}
    for content, needle in (({}, "non-empty JSON object"), ({"dcgan": 3}, "'dcgan' names no checkpoint path")):
        refs.write_text(json.dumps(content))
        with pytest.raises(ConfigError, match=needle):
            run.read_references(refs)
    with pytest.raises(ConfigError, match=r"none.json does not exist; train the reference models \(python experiments"):
        run.read_references(tmp_path / "none.json")
    assert [run.check_name(c) for c in run.select_checks(None)] == ALL_CHECKS
    assert [run.check_name(c) for c in run.select_checks("memorisation")] == ["memorisation"]
    with pytest.raises(ConfigError, match="--only nope: unknown check"):
        run.select_checks("two_sample,nope")


def test_scorecard_script_exits_with_the_one_line_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--references", str(tmp_path / "none.json"), "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("error: references file")
