"""Read what a training run left on disk, for the review page and the study scripts.

A run dir may hold ``.hydra/config.yaml`` (+ ``overrides.yaml``) or ``config_resolved.json``,
``metrics.json`` (final values), ``metrics/epoch_XXX.json`` and ``metrics/ckpt_*.json``
(MetricsCallback / probe CLI), ``metrics/nn_*.png``, ``samples/epoch_XXX.png``,
``probes/<epoch_XXX|ckpt_*>/<probe>/*.png|summary.json|<table>.json``, the k-GAN epoch folders
``kgan/epoch_XXX/`` (``cell_medoids.png``, ``samples_m<j>.png``, ``partition.json``), the CSV log
``csv/metrics.csv`` (the training curves: the CSV logger runs beside W&B by default; W&B's own run
files are not read here), and ``failure.json`` for a crashed or interrupted job (``reason``:
``error`` | ``interrupted``; an interruption names its signal, checkpoint and resume command).
Everything is optional.

One source per number: evaluation metrics come from ``metrics/epoch_XXX.json`` (full precision) for
the table and the curves alike; ``metrics.json`` (Lightning's float32 copies) only when a run has no
metrics files. PNG captions are stored in the files (:func:`gan_interp.io.png_caption`).
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
    # probe -> label -> {"images": [png], "summary": summary.json, "tables": {name: {"columns", "rows"}}}
    probes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    kgan: dict[str, dict[str, Any]] = field(default_factory=dict)  # epoch_XXX -> {"images": [png], "partition"}
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
        """Latest evaluation metrics: the last ``metrics/epoch_XXX.json`` (the source of the metric curves
        too), else the ``metrics/*`` of metrics.json (float32 copies) for a run without metrics files."""
        if self.metric_history:
            return dict(self.metric_history[max(self.metric_history)])
        return {k.removeprefix("metrics/"): v for k, v in self.final.items() if k.startswith("metrics/")}


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
        blob = _read_json(f)
        if not isinstance(blob, dict):
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
    """Training curves from the CSV log (``step`` = trainer.global_step); metrics come from their files."""
    csv_file = run.path / "csv" / "metrics.csv"
    if not csv_file.is_file():
        return
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


def flatten_summary(summary: dict[str, Any], max_list: int = 8) -> dict[str, Any]:
    """A probe's nested ``summary.json`` as one level for a table: nested keys joined with ``/`` (as in
    the logged ``probes/<probe>/<reading>`` names), numbers/strings/booleans as they are, a flat list of
    at most ``max_list`` numbers or strings kept whole, longer or nested number lists as ``<key>/mean``."""
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}/")
            elif isinstance(value, list):
                flat = all(isinstance(v, (int, float, str)) or v is None for v in value)
                if flat and 0 < len(value) <= max_list:
                    out[name] = value
                elif (nums := _numbers(value)) is not None and nums:
                    out[f"{name}/mean"] = sum(nums) / len(nums)
            elif value is not None:
                out[name] = value

    walk(summary, "")
    return out


def _numbers(value: Any) -> list[float] | None:
    """The finite numbers of a (nested) list of numbers; None when it holds anything else."""
    out: list[float] = []
    for v in value:
        if isinstance(v, list):
            inner = _numbers(v)
            if inner is None:
                return None
            out += inner
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            if math.isfinite(v):
                out.append(float(v))
        elif v is not None:
            return None
    return out


def _read_json(path: Path) -> Any:
    """The JSON content of ``path``, or None (with a warning) when it is unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("skipping unreadable %s: %s", path, exc)
        return None


def _read_probe_dir(probe_dir: Path) -> dict[str, Any]:
    """Images, summary and tables (``<name>.json`` holding ``columns`` and ``rows``) of one probe run."""
    summary = _read_json(probe_dir / "summary.json") if (probe_dir / "summary.json").is_file() else None
    tables = {}
    for f in sorted(probe_dir.glob("*.json")):
        blob = _read_json(f) if f.name != "summary.json" else None
        if isinstance(blob, dict) and isinstance(blob.get("columns"), list) and isinstance(blob.get("rows"), list):
            tables[f.stem] = blob
    return {
        "images": sorted(probe_dir.glob("*.png")),
        "summary": summary if isinstance(summary, dict) else {},
        "tables": tables,
    }


def _read_images(run: RunData) -> None:
    sdir = run.path / "samples"
    if sdir.is_dir():
        run.samples = [(f.stem, f) for f in sorted(sdir.glob("*.png"), key=_epoch_label)]
    pdir = run.path / "probes"
    if not pdir.is_dir():
        return
    for label_dir in sorted((d for d in pdir.iterdir() if d.is_dir()), key=_epoch_label):
        for probe_dir in sorted(d for d in label_dir.iterdir() if d.is_dir()):
            entry = _read_probe_dir(probe_dir)
            if entry["images"] or entry["summary"]:
                run.probes.setdefault(probe_dir.name, {})[label_dir.name] = entry


def _read_kgan(run: RunData) -> None:
    """The k-GAN epoch folders: cell medoids first, then the members' samples, and partition.json."""
    kdir = run.path / "kgan"
    if not kdir.is_dir():
        return
    for epoch_dir in sorted((d for d in kdir.iterdir() if d.is_dir()), key=_epoch_label):
        images = sorted(epoch_dir.glob("*.png"), key=lambda p: (p.stem != "cell_medoids", _member_order(p)))
        partition = _read_json(epoch_dir / "partition.json") if (epoch_dir / "partition.json").is_file() else None
        if images or partition:
            run.kgan[epoch_dir.name] = {"images": images, "partition": partition if isinstance(partition, dict) else {}}


def _member_order(path: Path) -> tuple[int, str]:
    """``samples_m10`` after ``samples_m9``."""
    m = re.search(r"(\d+)$", path.stem)
    return (int(m.group(1)) if m else -1, path.stem)


def collect_run(path: str | Path, curves: bool = True) -> RunData:
    """Read one run dir (missing pieces are simply absent); ``curves=False`` skips the CSV log."""
    path = Path(path)
    run = RunData(path=path, name=path.name)
    _read_config(run)
    _read_metrics(run)
    if curves:
        _read_curves(run)
    _read_images(run)
    _read_kgan(run)
    if (path / "failure.json").is_file():
        try:
            run.failure = json.loads((path / "failure.json").read_text())
        except json.JSONDecodeError:
            run.failure = {"error": "failure.json is unreadable"}
    return run
