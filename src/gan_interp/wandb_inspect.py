"""Read a local W&B run with wandb's own reader, ``wandb leet inspect --json`` (no network).

``wandb leet inspect --json <run dir>`` prints the records of a run's ``.wandb`` log, one JSON object a
line (``run``, ``config``, ``history``, ``summary``, ``artifact``, ...; nested values as dotted keys:
``samples/fixed_z._type``). :func:`inspect_run` folds them into a :class:`LocalRun`: who the run is
(id, name, group, job type, tags), its config, the last value of every key it logged, and its
artifacts. Keys logged here contain no ``.``, so a dotted key's first part is the logged key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    summary: dict[str, Any] = field(default_factory=dict)  # key -> last value (media/tables: their dicts)
    history_keys: set[str] = field(default_factory=set)  # every key of every history row
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # the artifact records
    exit_code: int | None = None

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


def _fold(flat: dict[str, Any], into: dict[str, Any]) -> None:
    """Dotted keys (``a/b._type``) -> ``into["a/b"]["_type"]``; plain keys overwrite."""
    for dotted, value in flat.items():
        key, _, rest = dotted.partition(".")
        if not rest:
            into[key] = value
            continue
        node = into.get(key)
        if not isinstance(node, dict):
            node = into[key] = {}
        node[rest] = value


def read_records(run_dir: str | Path, timeout: float = 300) -> list[dict[str, Any]]:
    """The run's records as ``wandb leet inspect --json`` prints them (read offline: no telemetry upload)."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"wandb leet inspect {run_dir} failed: {done.stderr.strip()[-300:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def inspect_run(run_dir: str | Path) -> LocalRun:
    """A :class:`LocalRun` of ``run_dir`` (a ``.../wandb/offline-run-*`` folder)."""
    run = LocalRun(path=Path(run_dir))
    for rec in read_records(run_dir):
        kind, body = rec.get("type"), rec.get(rec.get("type", ""), {})
        if kind == "run":
            run.run_id, run.name = body.get("run_id", ""), body.get("display_name", "") or run.name
            run.group, run.job_type = body.get("run_group", "") or run.group, body.get("job_type", "") or run.job_type
            run.tags = list(body.get("tags", [])) or run.tags
            run.config.update((body.get("config") or {}).get("update", {}))
        elif kind == "config":
            run.config.update(body.get("update", {}))
        elif kind == "summary":
            _fold(body.get("update", {}), run.summary)
        elif kind == "history":
            run.history_keys |= {k.partition(".")[0] for k in body.get("item", {})}
        elif kind == "artifact":
            run.artifacts.append(body)
        elif kind == "exit":
            run.exit_code = int(body.get("exit_code", 0))
    return run


def find_runs(root: str | Path) -> list[Path]:
    """The ``offline-run-*`` / ``run-*`` folders below ``root`` (any depth), oldest first."""
    found = [
        p for p in Path(root).rglob("*run-*") if p.is_dir() and p.parent.name == "wandb" and any(p.glob("*.wandb"))
    ]
    return sorted(found, key=lambda p: p.name.split("run-", 1)[1])
