"""Read what a training run left on disk, for the review page and the study scripts.

A run dir may hold ``.hydra/config.yaml`` (+ ``overrides.yaml``) or ``config_resolved.json``,
``metrics.json`` (final values), ``metrics/epoch_XXX.json`` and ``metrics/ckpt_*.json``
(MetricsCallback / probe CLI), ``metrics/nn_*.png``, ``samples/epoch_XXX.png``,
``probes/<epoch_XXX|ckpt_*>/<probe>/*.png|summary.json``, a CSV log ``csv/metrics.csv``, an
offline W&B run under ``wandb/``, and ``failure.json`` for a crashed or interrupted job (``reason``:
``error`` | ``interrupted``; an interruption names its signal, checkpoint and resume command). Everything
is optional.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

RUN_MARKERS = (".hydra/config.yaml", "config_resolved.json", "metrics.json", "checkpoints", "samples", "failure.json")
EPOCH_RE = re.compile(r"epoch_(\d+)")


@dataclass
class RunData:
    """Everything the report shows about one run."""

    path: Path
    name: str
    config_text: str = ""  # YAML shown in the report
    config: dict[str, Any] = field(default_factory=dict)  # parsed (unresolved) config
    overrides: list[str] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)  # metrics.json
    metric_history: dict[int, dict[str, float]] = field(default_factory=dict)  # epoch -> metric values
    metric_info: dict[str, Any] = field(default_factory=dict)  # info block of the latest metrics file
    checkpoint_metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # ckpt_<name> -> values
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # logged key -> (step, value)
    curve_source: str = ""  # 'csv' | 'wandb' | ''
    samples: list[tuple[str, Path]] = field(default_factory=list)  # (label, png)
    nn_galleries: list[tuple[str, Path]] = field(default_factory=list)
    probes: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=dict
    )  # probe -> label -> {"images", "summary"}
    failure: dict[str, Any] | None = None

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def model(self) -> str:
        return str(self.get("model.name", "?"))

    @property
    def data(self) -> str:
        return str(self.get("data.name", "?"))

    @property
    def seed(self) -> str:
        return str(self.get("seed", "?"))

    @property
    def status(self) -> str:
        """'ok', 'interrupted' (stopped by SIGTERM/SIGINT with a resumable checkpoint) or 'failed'."""
        if not self.failure:
            return "ok"
        return "interrupted" if self.failure.get("reason") == "interrupted" else "failed"

    def final_metrics(self) -> dict[str, float]:
        """Latest evaluation metrics: ``metrics/*`` of metrics.json, else the last epoch file."""
        from_final = {k.removeprefix("metrics/"): v for k, v in self.final.items() if k.startswith("metrics/")}
        if from_final:
            return from_final
        if self.metric_history:
            return dict(self.metric_history[max(self.metric_history)])
        return {}


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in RUN_MARKERS)


def find_runs(root: Path, max_depth: int = 3) -> list[Path]:
    """``[root]`` if it is a run, else the run dirs below it (a multirun/sweep dir), sorted."""
    root = Path(root)
    if is_run_dir(root):
        return [root]
    found: list[Path] = []
    frontier = [root]
    for _ in range(max_depth):
        nxt = []
        for d in frontier:
            for child in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):
                (found if is_run_dir(child) else nxt).append(child)
        frontier = nxt
    return sorted(found)


def _epoch_label(path: Path) -> tuple[int, str]:
    m = EPOCH_RE.search(path.stem if path.is_file() else path.name)
    return (int(m.group(1)) if m else 10**9, path.stem if path.is_file() else path.name)


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _read_config(run: RunData) -> None:
    hydra_cfg, resolved = run.path / ".hydra" / "config.yaml", run.path / "config_resolved.json"
    if hydra_cfg.is_file():
        run.config_text = hydra_cfg.read_text()
        run.config = yaml.safe_load(run.config_text) or {}
        overrides = run.path / ".hydra" / "overrides.yaml"
        if overrides.is_file():
            run.overrides = [str(o) for o in (yaml.safe_load(overrides.read_text()) or [])]
    elif resolved.is_file():
        run.config = json.loads(resolved.read_text())
        run.config_text = yaml.safe_dump(run.config, sort_keys=False)


def _read_metrics(run: RunData) -> None:
    final = run.path / "metrics.json"
    if final.is_file():
        run.final = {k: f for k, v in json.loads(final.read_text()).items() if (f := _finite(v)) is not None}
    mdir = run.path / "metrics"
    if not mdir.is_dir():
        return
    latest: tuple[int, dict[str, Any]] | None = None
    for f in sorted(mdir.glob("*.json")):
        try:
            blob = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("skipping unreadable %s: %s", f, exc)
            continue
        values = {k: fv for k, v in (blob.get("values") or {}).items() if (fv := _finite(v)) is not None}
        if f.stem.startswith("epoch_"):
            epoch = int(blob.get("epoch", _epoch_label(f)[0]))
            run.metric_history[epoch] = values
            if latest is None or epoch >= latest[0]:
                latest = (epoch, blob.get("info") or {})
        else:
            run.checkpoint_metrics[f.stem] = values
    if latest is not None:
        run.metric_info = latest[1]
    run.nn_galleries = [(f.stem.removeprefix("nn_"), f) for f in sorted(mdir.glob("nn_*.png"), key=_epoch_label)]


def _read_curves(run: RunData) -> None:
    csv_file = run.path / "csv" / "metrics.csv"
    if csv_file.is_file():
        with csv_file.open(newline="") as fh:
            for row in csv.DictReader(fh):
                step = _finite(row.get("step"))
                if step is None:
                    continue
                for key, value in row.items():
                    v = _finite(value)
                    if key in ("step", "epoch") or v is None or key.startswith("metrics/"):
                        continue
                    run.curves.setdefault(key, []).append((step, v))
        run.curve_source = "csv" if run.curves else ""
        if run.curves:
            return
    try:
        from gan_interp.wandb_offline import find_offline_runs, read_offline_run

        offline = find_offline_runs(run.path)
        if not offline:
            return
        wb = read_offline_run(offline[-1])
    except Exception as exc:  # a damaged W&B file must not break the report
        log.warning("cannot read the W&B run in %s: %s", run.path, exc)
        return
    for row in wb.history:
        step = _finite(row.get("trainer/global_step", row.get("_step")))
        if step is None:
            continue
        for key, value in row.items():
            v = _finite(value)
            if v is None or key.startswith(("_", "metrics/", "trainer/")) or key in ("epoch",):
                continue
            run.curves.setdefault(key, []).append((step, v))
    run.curve_source = "wandb" if run.curves else ""


def _read_images(run: RunData) -> None:
    sdir = run.path / "samples"
    if sdir.is_dir():
        run.samples = [(f.stem, f) for f in sorted(sdir.glob("*.png"), key=_epoch_label)]
    pdir = run.path / "probes"
    if not pdir.is_dir():
        return
    for label_dir in sorted((d for d in pdir.iterdir() if d.is_dir()), key=_epoch_label):
        for probe_dir in sorted(d for d in label_dir.iterdir() if d.is_dir()):
            images = sorted(probe_dir.glob("*.png"))
            summary: dict[str, Any] = {}
            if (probe_dir / "summary.json").is_file():
                try:
                    summary = json.loads((probe_dir / "summary.json").read_text())
                except json.JSONDecodeError:
                    summary = {}
            if images or summary:
                run.probes.setdefault(probe_dir.name, {})[label_dir.name] = {"images": images, "summary": summary}


def collect_run(path: str | Path, curves: bool = True) -> RunData:
    """Read one run dir (missing pieces are simply absent); ``curves=False`` skips the CSV/W&B logs."""
    path = Path(path)
    run = RunData(path=path, name=path.name)
    _read_config(run)
    _read_metrics(run)
    if curves:
        _read_curves(run)
    _read_images(run)
    if (path / "failure.json").is_file():
        try:
            run.failure = json.loads((path / "failure.json").read_text())
        except json.JSONDecodeError:
            run.failure = {"error": "failure.json is unreadable"}
    return run
