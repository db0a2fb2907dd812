"""Read a local W&B run with wandb's own reader, ``wandb leet inspect --json`` (no network).

W&B's transaction log (``run-<id>.wandb``) is read by ``wandb leet inspect --json <run dir>``, the record
inspector that ships with wandb (>= 0.26): one JSON object per record (``run``, ``config``, ``history``,
``summary``, ``metric``, ``files``, ``artifact``, ``exit``, ...; nested values as dotted keys:
``samples/fixed_z._type``). :func:`inspect_run` gathers them into a :class:`LocalRun`; nothing here decodes
W&B's binary format. Users: the dashboard builder (which keys the runs logged) and the tests. Training and the
review page never read W&B runs (the page reads the CSV log that runs beside W&B).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INSPECT_TIMEOUT_S = 300  # a tiny test run is read in ~3 s
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}  # how the inspector prints them
MEDIA_TYPES = ("image-file", "images/separated")  # summary "_type" of image keys
TABLE_TYPES = ("table-file", "partitioned-table")  # ... of table keys


@dataclass
class LocalRun:
    """What an offline (or not yet synced) run logged, as wandb's reader reports it."""

    path: Path  # the offline-run-* folder
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per wandb.log call
    summary: dict[str, Any] = field(default_factory=dict)  # key -> last value (media/tables/min-max: dicts)
    # define_metric records: name or glob ("probes/*") -> {"step_metric": str, "summary": [min, max, last, ...]}
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # paths (under files_dir) the run saved, in order
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # the artifact records
    exit_code: int | None = None  # wandb.finish(exit_code=...): 0 finished, else failed (143/130: a signal)

    @property
    def files_dir(self) -> Path:
        return self.path / "files"

    @property
    def history_keys(self) -> set[str]:
        """Every key of every history row."""
        return {k for row in self.history for k in row}

    def series(self, key: str) -> list[Any]:
        """All logged values of one key, in order."""
        return [row[key] for row in self.history if key in row]

    def image_files(self, key_prefix: str = "") -> list[Path]:
        """PNG files the run stored for image keys starting with ``key_prefix``."""
        root = self.files_dir / "media" / "images"
        return sorted(p for p in root.rglob("*.png") if str(p.relative_to(root)).startswith(key_prefix))

    def keys(self, kind: str) -> list[str]:
        """Sorted logged keys of a kind: ``scalar`` (numbers), ``image`` or ``table``; ``_*`` keys skipped."""
        out = []
        for key, value in self.summary.items():
            if key.startswith("_"):
                continue
            media = value.get("_type") if isinstance(value, dict) else None
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            stats = isinstance(value, dict) and media is None  # define_metric summaries: {"min": .., "last": ..}
            found = {"scalar": is_number or stats, "image": media in MEDIA_TYPES, "table": media in TABLE_TYPES}
            if found[kind]:
                out.append(key)
        return sorted(out)


def inspect_records(run_dir: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a run, as ``wandb leet inspect --json`` prints them (read offline: no telemetry upload)."""
    run_dir = Path(run_dir)
    if not any(run_dir.glob("*.wandb")):
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)]
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSPECT_TIMEOUT_S, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"`wandb leet inspect --json {run_dir}` failed (exit {proc.returncode}): {tail[0]}")
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            yield json.loads(line)


def nest_dotted(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a/b.caption": x, "a/b.path": y}`` -> ``{"a/b": {"caption": x, "path": y}}``: media (images,
    tables) are logged as nested values and the inspector prints them with dotted keys; ``"NaN"`` and
    ``"(-)Infinity"`` (JSON has no such numbers) become floats again."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # a plain value under the same name: keep the key as it is
                node, leaf = out, key
                break
        node[leaf] = NON_FINITE.get(value, value) if isinstance(value, str) else value
    return out


def _add_metric(metrics: dict[str, dict[str, Any]], m: dict[str, Any]) -> None:
    """One define_metric record (explicit, or expanded from a glob by W&B) into ``metrics``."""
    key = m.get("name") or m.get("glob_name")
    if not key:
        return
    entry = metrics.setdefault(key, {"step_metric": "", "summary": []})
    entry["step_metric"] = m.get("step_metric") or entry["step_metric"]
    stats = [name for name, on in (m.get("summary") or {}).items() if on]
    entry["summary"] = sorted(set(entry["summary"]) | set(stats))


def _add_run(out: LocalRun, run: dict[str, Any]) -> None:
    """A ``run`` record; a run may be re-sent with only some fields set: keep what is known."""
    out.run_id = run.get("run_id") or out.run_id
    out.name = run.get("display_name") or out.name
    out.group = run.get("run_group") or out.group
    out.tags = list(run.get("tags") or out.tags)
    out.job_type = run.get("job_type") or out.job_type
    out.config.update((run.get("config") or {}).get("update") or {})


def _add_record(out: LocalRun, rec: dict[str, Any]) -> None:
    kind = rec.get("type")
    body = rec.get(kind) or {}
    if kind == "run":
        _add_run(out, body)
    elif kind == "config":
        out.config.update(body.get("update") or {})
    elif kind == "history":
        out.history.append(nest_dotted(body.get("item") or {}))
    elif kind == "summary":
        out.summary.update(nest_dotted(body.get("update") or {}))
    elif kind == "metric":
        _add_metric(out.metrics, body)
    elif kind == "files":
        out.files += [f["path"] for f in body.get("files") or [] if f.get("path")]
    elif kind == "artifact":
        out.artifacts.append(body)
    elif kind == "exit":
        out.exit_code = int(body.get("exit_code", 0))


def inspect_run(run_dir: str | Path) -> LocalRun:
    """A :class:`LocalRun` of ``run_dir`` (a ``.../wandb/offline-run-*`` folder)."""
    out = LocalRun(path=Path(run_dir))
    for rec in inspect_records(run_dir):
        _add_record(out, rec)
    return out


def find_runs(root: str | Path) -> list[Path]:
    """The ``offline-run-*`` / ``run-*`` folders below ``root`` (any depth), oldest first."""
    found = [
        p for p in Path(root).rglob("*run-*") if p.is_dir() and p.parent.name == "wandb" and any(p.glob("*.wandb"))
    ]
    return sorted(found, key=lambda p: p.name.split("run-", 1)[1])
