"""A study's result tables as ``wandb.Table``s, in a W&B run of job_type ``study``.

Every study writes ``results.md``: captions, each followed by a Markdown table. :func:`markdown_tables`
reads them back; :func:`log_study_tables` logs each as ``study/<name>`` (the caption's first words)
in one offline-by-default run under ``<save_dir>/wandb/`` (the study's sweep folder inside its
``outputs/``), in the sweep's W&B group, so the dashboard shows the same numbers as the README. Cells
become numbers where they are numbers; a column of ``mean ± sd`` cells becomes two columns
(``<col>`` and ``<col> sd``); ``n/a`` becomes an empty cell.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PM = " ± "  # report.tables.fmt's mean ± sd separator
NA = ("n/a", "")


@dataclass(frozen=True)
class MarkdownTable:
    name: str  # W&B key part: the caption's first words, e.g. final_metrics
    caption: str  # the line before the table
    columns: list[str]
    rows: list[list[str]]  # cells as written


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _name(caption: str, taken: set[str]) -> str:
    words = re.split(r"[(:;,.]", caption, maxsplit=1)[0]
    base = re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_")[:40] or "table"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def markdown_tables(text: str) -> list[MarkdownTable]:
    """The Markdown tables of ``text`` with the non-empty line before each as its caption."""
    lines = text.splitlines()
    tables, taken, i = [], set(), 0
    while i < len(lines):
        is_table = (
            lines[i].startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1])
        )
        if not is_table:
            i += 1
            continue
        caption = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
        end = i + 2
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        rows = [_cells(ln) for ln in lines[i + 2 : end]]
        tables.append(MarkdownTable(_name(caption, taken), caption, _cells(lines[i]), rows))
        i = end
    return tables


def _number(cell: str) -> float | None:
    """``'0.123'``/``'1.2e-05'`` -> float, ``'n/a'`` -> None; anything else raises ValueError."""
    return None if cell in NA else float(cell)


def typed_columns(table: MarkdownTable) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows with numbers as numbers; ``m ± sd`` columns split into ``col`` and ``col sd``."""
    columns: list[str] = []
    parts: list[list[list[Any]]] = []  # per source column: per row, its output cells
    for j, col in enumerate(table.columns):
        cells = [row[j] if j < len(row) else "" for row in table.rows]
        try:
            if any(PM in c for c in cells):
                pairs = [c.split(PM) if PM in c else [c, ""] for c in cells]
                parts.append([[_number(m), _number(sd)] for m, sd in pairs])
                columns += [col, f"{col} sd"]
                continue
            parts.append([[_number(c)] for c in cells])
        except ValueError:  # text (model names, concepts, settings)
            parts.append([[c] for c in cells])
        columns.append(col)
    rows = [[v for part in parts for v in part[i]] for i in range(len(table.rows))]
    return columns, rows


def sweep_identity(sweep_dir: Path) -> tuple[str, str | None]:
    """(study name, W&B group) of a sweep: the jobs' ``experiment=`` choice (``.hydra/hydra.yaml``) and
    group (``config_resolved.json``); the study defaults to the folder two levels up
    (``experiments/<study>/outputs/sweep``), the group to None."""
    from omegaconf import OmegaConf

    study, group = Path(sweep_dir).resolve().parent.parent.name, None
    for hydra_yaml in sorted(Path(sweep_dir).glob("*/.hydra/hydra.yaml"))[:1]:
        study = str(OmegaConf.load(hydra_yaml).hydra.runtime.choices.get("experiment") or study)
    for resolved in sorted(Path(sweep_dir).glob("*/config_resolved.json"))[:1]:
        group = json.loads(resolved.read_text()).get("group")
    return study, group


def log_study_tables(
    save_dir: Path,  # the run lands in <save_dir>/wandb/ (the study's sweep folder)
    results_md: Path,  # the study's results.md
    study: str | None = None,  # the study's name (run name <study>-tables, tag); default: sweep_identity
    group: str | None = None,  # W&B group; default: the sweep's (sweep_identity), else the study's name
    config: dict[str, Any] | None = None,  # extra run config (title, sweep dir, ...)
) -> Path | None:
    """Log the tables of ``results_md`` in a study run; its ``offline-run-*`` folder (None if that failed)."""
    import wandb

    from gan_interp.logging_utils import finish_wandb, make_wandb_logger

    try:
        tables = markdown_tables(Path(results_md).read_text())
        found_study, found_group = sweep_identity(save_dir)
        study = study or found_study
        group = group or found_group or study
        logger = make_wandb_logger(
            str(save_dir), name=f"{study}-tables", group=group, tags=["study", study], job_type="study"
        )
        run = logger.experiment
        captions = {t.name: t.caption for t in tables}
        run.config.update({"study": study, "results": str(results_md), "captions": captions, **(config or {})})
        payload = {}
        for table in tables:
            columns, rows = typed_columns(table)
            payload[f"study/{table.name}"] = wandb.Table(columns=columns, data=rows, allow_mixed_types=True)
        run.log(payload)
        folder = Path(run.dir).parent
    except Exception as exc:  # the tables are on disk already; W&B is a second home for them
        log.warning("could not log the study tables of %s to W&B: %s", results_md, exc)
        finish_wandb(exit_code=1)
        return None
    finish_wandb()
    return folder
