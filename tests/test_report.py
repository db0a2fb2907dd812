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
import torch
from conftest import compose_config
from PIL import Image

from gan_interp.io import save_png
from gan_interp.report import build_report, main, run_data, write_report
from gan_interp.report.html import CSS, figure, img_tag, png_size
from gan_interp.report.page import loss_series
from gan_interp.report.run_data import collect_run, find_runs, flatten_summary
from gan_interp.train import train

TINY = ["data=fake", "model.ngf=8", "model.ndf=8", "model.latent_dim=16"]
IMG_RE = re.compile(r"<img [^>]*src=\"([^\"]*)\"")
CHEAP_PROBES = [
    "probes=default",
    "probes.probes.actmax.steps=2",
    "probes.probes.directions.n_samples=16",
    "probes.probes.saliency.nt_samples=2",
    "probes.probes.traversals.dims=2",
    "probes.probes.members.n_medoid=4",
]


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


@pytest.fixture(scope="module")
def kgan_run_dir(tmp_path_factory) -> Path:
    """A 2-epoch tiny k-GAN run with the default loggers (W&B + CSV), every probe after each epoch and the
    metrics once, at the end (one-point metric curves)."""
    tmp = tmp_path_factory.mktemp("report_kgan")
    overrides = [*TINY, "model=kgan", "model.ngf=8", "model.ndf=8", "model.latent_dim=8", "trainer.max_epochs=2"]
    overrides += [*CHEAP_PROBES, "schedule.probes.every_n_epochs=1", "metrics=default", "metrics.n=24"]
    overrides += ["metrics.metrics.c2st.epochs=1", "metrics.metrics.mmd.n_permutations=20"]
    cfg = compose_config(tmp, overrides)
    assert list(cfg.logger) == ["wandb", "csv"]  # the default: the CSV log runs beside W&B
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
        latest = dst / "metrics" / "epoch_001.json"  # the table's source: the last metrics file
        blob = json.loads(latest.read_text())
        blob["values"]["fid"] = fid
        latest.write_text(json.dumps(blob))
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


def test_curves_come_from_the_csv_log_and_a_run_without_one_says_so(tmp_path) -> None:
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "wandb" / "offline-run-x").mkdir(parents=True)  # W&B's files are not read by the report
    data = collect_run(run)
    assert data.curves == {} and data.curve_source == "" and run_data.is_run_dir(run)
    assert "No training curves: this run has no CSV log" in build_report(run)
    (run / "csv").mkdir()
    (run / "csv" / "metrics.csv").write_text(
        "epoch,step,train/d_loss_step,train/g_loss_epoch,metrics/fid\n0,2,1.5,,\n0,4,1.2,0.7,3.0\n"
    )
    data = collect_run(run)
    assert data.curve_source == "csv"
    assert data.curves == {"train/d_loss_step": [(2.0, 1.5), (4.0, 1.2)], "train/g_loss_epoch": [(4.0, 0.7)]}
    text = build_report(run)
    assert "Training curves" in text and "Logged once:" in text  # a one-point series is a number, not a plot
    assert '<th class="l">train/g_loss (step 4)</th><td>0.7</td>' in text


def test_loss_series_puts_the_whole_models_curves_first() -> None:
    keys = ["kgan/ot_cost", "train/m0/d_loss_step", "val/critic_gap", "train/d_loss_step", "g_steps", "probes/x"]
    run = run_data.RunData(path=Path("."), name="x", curves={k: [(1.0, 1.0), (2.0, 2.0)] for k in keys})
    assert list(loss_series(run)) == ["train/d_loss", "val/critic_gap", "kgan/ot_cost", "train/m0/d_loss"]


def test_one_source_per_number_the_metrics_files(tmp_path) -> None:
    """metrics.json holds Lightning's float32 copies (a tiny p-value underflows to 0): the table and the curve
    both read metrics/epoch_XXX.json, formatted by the one formatter."""
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"metrics/c2st_p_value": 0.0, "g_steps": 3.0}))
    for epoch, p in [(0, 0.5), (1, 6.3e-112)]:
        blob = {"epoch": epoch, "values": {"c2st_p_value": p}}
        (run / "metrics" / f"epoch_{epoch:03d}.json").write_text(json.dumps(blob))
    data = collect_run(run)
    assert data.final_metrics() == {"c2st_p_value": 6.3e-112} == data.metric_history[1]
    text = build_report(run)
    assert '<th class="l">c2st_p_value</th><td>6.3e-112</td>' in text and "<td>0</td>" not in text
    assert "Metric curves" in text  # two evaluations: a curve
    (run / "metrics" / "epoch_000.json").unlink()
    text = build_report(run)
    assert "Metric curves" not in text and "Metrics were evaluated at one epoch (1)" in text
    shutil.rmtree(run / "metrics")
    assert collect_run(run).final_metrics() == {"c2st_p_value": 0.0}  # no metrics files: metrics.json


def test_flatten_summary_shows_nested_readings() -> None:
    summary = {
        "n": 8,
        "space": "z",
        "sefa": {"effect": [1.0, 2.0, 3.0], "effect_ratio_vs_random": 1.5, "space": "w"},
        "pixel": {"distances": [[1.0, 3.0], [5.0, 7.0]], "gen_over_val": 0.9},
        "members": {"0": {"diversity": 0.1}, "1": {"diversity": 0.2}},
        "history": list(range(20)),
        "missing": None,
        "time_s": 0.25,
    }
    assert flatten_summary(summary) == {
        "n": 8,
        "space": "z",
        "sefa/effect": [1.0, 2.0, 3.0],  # a short list whole
        "sefa/effect_ratio_vs_random": 1.5,
        "sefa/space": "w",
        "pixel/distances/mean": 4.0,  # a matrix as its mean (the W&B reading's name)
        "pixel/gen_over_val": 0.9,
        "members/0/diversity": 0.1,
        "members/1/diversity": 0.2,
        "history/mean": 9.5,  # a long list as its mean
        "time_s": 0.25,
    }


def test_small_images_are_scaled_up_by_a_whole_factor_and_keep_their_caption(tmp_path) -> None:
    path = save_png(torch.rand(3, 4, 8), tmp_path / "tiny.png", caption="rows: a, columns: b")
    raw = path.read_bytes()
    assert png_size(raw) == (8, 4)
    tag = img_tag(raw, "tiny", min_px=192)
    assert ' class="px" width="192" height="96">' in tag  # 24 x, drawn without smoothing
    assert " width=" not in img_tag(raw, "tiny")  # a plot: as it is
    assert "img.px{image-rendering:pixelated}" in CSS
    assert "<figcaption><b>tiny</b>: rows: a, columns: b</figcaption>" in figure(path)


def test_kgan_run_page_shows_readings_captions_epoch_folder_and_one_point_metrics(kgan_run_dir, tmp_path) -> None:
    run = collect_run(kgan_run_dir)
    assert run.curve_source == "csv" and "train/d_loss_epoch" in run.curves  # the CSV beside W&B
    assert sorted(run.kgan) == ["epoch_000", "epoch_001"]
    first = run.kgan["epoch_001"]
    assert [p.stem for p in first["images"]] == ["cell_medoids", "cell_sites", "samples_m0", "samples_m1", "samples_m2"]
    assert sum(first["partition"]["cell_sizes"]) > 0
    assert {"directions", "traversals", "neighbours", "members", "actmax"} <= set(run.probes)
    assert "reached" in run.probes["actmax"]["epoch_001"]["tables"]
    text = write_report(kgan_run_dir, tmp_path / "k.html").read_text()
    for needle in (
        "k-GAN partition (slider: epoch)",
        "<b>cell_medoids</b>: the training image at the medoid of cells 0..2",  # captions kept
        "<b>samples_m1</b>: member 1: fixed latents 0..15, 4 per row",
        "<b>epoch_001</b>: 64 samples of the fixed latents 0..63 (the same every epoch), 8 per row",
        "<th>cell</th><th>size</th><th>weight</th><th>medoid row</th>",
        '<th class="l">sefa/effect_ratio_vs_random</th>',  # nested readings, not only time_s
        '<th class="l">freeze_diversity/none</th>',
        '<th class="l">pixel/gen_over_val</th>',
        '<th class="l">members/0/diversity</th>',
        '<th class="l">pixel/reached</th>',
        "<th>channel</th><th>parametrisation</th><th>start</th><th>reached</th>",  # a probe table
        "Metrics were evaluated at one epoch (1)",  # one-point metric curves: numbers, no plot
        "Status: ok",
    ):
        assert needle in text, needle
    assert "<h3>Metric curves</h3>" not in text


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


def test_kgan_page_in_headless_chromium_scales_small_images_without_smoothing(kgan_run_dir, tmp_path) -> None:
    chromium = _chromium()
    page = write_report(kgan_run_dir, tmp_path / "kgan.html")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    shot = tmp_path / "kgan.png"
    common = [*flags, "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--window-size=1200,2400"]
    subprocess.run(
        [chromium, *common, f"--user-data-dir={tmp_path / 'u1'}", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=180,
        check=True,
    )
    dom = subprocess.run(
        [chromium, *common, f"--user-data-dir={tmp_path / 'u2'}", "--virtual-time-budget=10000", "--dump-dom"]
        + [page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    attrs = dict(re.findall(r'data-([a-z-]+)="(\d+)"', dom[dom.index("<body") : dom.index(">", dom.index("<body"))]))
    assert int(attrs["images-loaded"]) == int(attrs["images-total"]) > 0
    # every small data image on screen (k-GAN medoids and member grids, probe figures) is drawn >= 2x, pixelated
    assert int(attrs["small-shown"]) >= 4 and attrs["small-scaled"] == attrs["small-shown"]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(np.float32)
    assert img.shape == (2400, 1200, 3) and img.std() > 20


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
    single = build_report(sweep / "2_stopped")  # the page of the interrupted run alone says so at the top
    assert "<p>Status: <span class=interrupted>interrupted</span></p>" in single
