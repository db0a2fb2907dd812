"""The static HTML report: content, self-containment, multirun comparison, and a headless-Chromium check."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config
from PIL import Image

from gan_interp.report import build_report, main, run_data, write_report
from gan_interp.report.run_data import collect_run, find_runs
from gan_interp.train import train
from gan_interp.wandb_offline import OfflineRun

TINY = ["data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=16"]
IMG_RE = re.compile(r"<img [^>]*src=\"([^\"]*)\"")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A 2-epoch tiny run with CSV logs, metrics after each epoch, and one probe per epoch."""
    tmp = tmp_path_factory.mktemp("report")
    cfg = compose_config(
        tmp,
        [
            *TINY,
            "trainer.max_epochs=2",
            "logger=csv",
            "metrics=default",
            "metrics.n=24",
            "schedule.metrics.every_n_epochs=1",
            "metrics.metrics.c2st.epochs=1",
            "+metrics.metrics.c2st.min_steps=5",
            "metrics.metrics.mmd.n_permutations=20",
            "probes=filters",
            "schedule.probes.every_n_epochs=1",
        ],
    )
    train(cfg)
    return Path(cfg.paths.output_dir)


def test_single_run_report_is_self_contained_and_complete(run_dir, tmp_path) -> None:
    out = write_report(run_dir, tmp_path / "r.html")
    text = out.read_text()
    srcs = IMG_RE.findall(text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)  # every image embedded
    assert "http://" not in text and "https://" not in text and "file:" not in text  # nothing to fetch
    run = collect_run(run_dir)
    assert sorted(run.metric_history) == [0, 1] and run.curve_source == "csv"
    assert [lab for lab, _ in run.samples] == ["epoch_000", "epoch_001"]
    assert set(run.probes) == {"filters"} and set(run.probes["filters"]) == {"epoch_000", "epoch_001"}
    n_probe_imgs = sum(len(e["images"]) for e in run.probes["filters"].values())
    # samples (2) + probe images + training curves + metric curves
    assert len(srcs) == 2 + n_probe_imgs + 2
    for needle in (
        "dcgan",
        "mmd2",
        "c2st_accuracy",
        "Samples (fixed latents)",
        "Training curves",
        "Metric curves",
        "Probes (slider: epoch)",
        "filters",
        'type="range"',
        "<summary>Config</summary>",
    ):
        assert needle in text, needle


def test_multirun_report_has_a_comparison_table(run_dir, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    for i, (model, fid) in enumerate([("dcgan", 30.0), ("stylegan_lite", 12.0)]):
        dst = sweep / f"{i}_{model}_fake_s{i}"
        shutil.copytree(run_dir, dst, ignore=shutil.ignore_patterns("checkpoints", "probes"))
        cfg = json.loads((dst / "config_resolved.json").read_text())
        cfg["model"]["name"], cfg["seed"] = model, i
        (dst / "config_resolved.json").write_text(json.dumps(cfg))
        final = json.loads((dst / "metrics.json").read_text())
        final["metrics/fid"] = fid
        (dst / "metrics.json").write_text(json.dumps(final))
    (sweep / "multirun.yaml").write_text("{}")
    assert [p.name for p in find_runs(sweep)] == ["0_dcgan_fake_s0", "1_stylegan_lite_fake_s1"]
    text = build_report(sweep)
    assert "Architecture comparison" in text and "2 runs" in text
    table = text[text.index("<table class='cmp'>") : text.index("</table>")]
    rows = table.split("<tr>")[1:]
    assert rows[1].count("<td") == 2 and "dcgan" in rows[1] and "stylegan_lite" in rows[1]  # runs side by side
    fid_row = next(r for r in rows if r.startswith("<th class='l'>fid</th>"))
    assert fid_row.endswith("<td class=''>30</td><td class='best'>12</td></tr>")  # lowest FID highlighted
    assert "Metric curves, all runs" in text


def test_wandb_history_is_used_when_there_is_no_csv(tmp_path, monkeypatch) -> None:
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "wandb" / "offline-run-x").mkdir(parents=True)
    fake = OfflineRun(
        history=[
            {"trainer/global_step": 2, "train/d_loss_step": 1.5, "_step": 0},
            {"trainer/global_step": 4, "train/d_loss_step": 1.2, "metrics/fid": 3.0, "_step": 1},
        ]
    )
    monkeypatch.setattr("gan_interp.wandb_offline.read_offline_run", lambda p: fake)
    data = collect_run(run)
    assert data.curve_source == "wandb" and data.curves == {"train/d_loss_step": [(2.0, 1.5), (4.0, 1.2)]}
    assert run_data.is_run_dir(run)


def test_cli(run_dir, tmp_path, capsys) -> None:
    assert main([str(run_dir), "-o", str(tmp_path / "x.html")]) == 0
    assert Path(capsys.readouterr().out.strip()) == tmp_path / "x.html"
    assert main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == f"error: run_dir={tmp_path / 'missing'} is not a directory"
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "is not a run or multirun directory" in capsys.readouterr().err


def _chromium() -> str:
    """Path of a headless Chromium; installs Debian's ``chromium`` if absent, else skips with the reason."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be installed here (no apt-get or not root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        proc = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("installing chromium with apt-get timed out (no network?)")
    found = shutil.which("chromium")
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        pytest.skip(f"chromium is not installed and `apt-get install chromium` failed: {tail[0]}")
    return found


def test_report_renders_in_headless_chromium_with_all_images_loaded(run_dir, tmp_path) -> None:
    chromium = _chromium()
    page = write_report(run_dir, tmp_path / "page.html")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            *flags,
            f"--user-data-dir={tmp_path / 'ud1'}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=180,
        check=True,
    )
    dom = subprocess.run(
        [
            chromium,
            *flags,
            f"--user-data-dir={tmp_path / 'ud2'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    body = re.search(r'<body data-images-total="(\d+)" data-images-loaded="(\d+)"', dom)
    assert body, "the page's load script did not run"
    total, loaded = int(body.group(1)), int(body.group(2))
    assert total == len(IMG_RE.findall(page.read_text())) and total > 0
    assert loaded == total  # every embedded image decoded (naturalWidth > 0)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(np.float32)
    assert img.shape == (2000, 1200, 3)
    assert img.std() > 20  # not a blank page
    colourful = (np.abs(img[..., 0] - img[..., 2]) > 40).mean()
    assert colourful > 0.001  # the coloured metric curves (blue lines) are drawn


def test_interrupted_and_failed_runs_are_marked(run_dir, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    ckpt = "/runs/x/checkpoints/last.ckpt"
    resume = f"python -m gan_interp.train data=fake hydra.run.dir=/runs/x ckpt_path={ckpt}"
    records = {
        "0_ok": None,
        "1_failed": {"reason": "error", "error": "ValueError: boom"},
        "2_stopped": {
            "reason": "interrupted",
            "signal": "SIGTERM",
            "epoch": 1,
            "global_step": 8,
            "checkpoint": ckpt,
            "resume": resume,
            "error": "interrupted by SIGTERM at epoch 1, step 8",
        },
    }
    for name, record in records.items():
        shutil.copytree(run_dir, sweep / name, ignore=shutil.ignore_patterns("checkpoints", "probes"))
        if record:
            (sweep / name / "failure.json").write_text(json.dumps(record))
    (sweep / "multirun.yaml").write_text("{}")
    assert [collect_run(sweep / n).status for n in records] == ["ok", "failed", "interrupted"]
    text = build_report(sweep)
    status = next(r for r in text.split("<tr>") if r.startswith("<th class='l'>status</th>"))
    assert status.endswith(
        "<td>ok</td><td><span class=fail>failed</span></td><td><span class=interrupted>interrupted</span></td></tr>"
    )
    assert "<p class='interrupted'>Interrupted by SIGTERM at epoch 1, step 8.</p>" in text
    assert f"<pre>{resume}</pre>" in text and "This job failed: ValueError: boom" in text
