"""A W&B workspace for one group of runs (a sweep, a study), built as code with ``wandb-workspaces``.

    python -m gan_interp.dashboard --entity E --project P --group G [--runs outputs] [--out spec.json]

The panels are made from the keys the group's runs logged, read locally (the ``wandb/*run-*`` folders
under ``--runs``, by wandb's own reader: :mod:`gan_interp.wandb_inspect`), so they match what a
sync uploads: sections for the sample grids by epoch per run (``samples/*``, ``kgan/*``), the metric
curves against ``epoch`` (``metrics/*``, ``val/*``, ``train/*`` epoch means), the probe readings
(``probes/<probe>/<reading>``: one section per probe, plus one parallel-coordinates plot of the readings
every training run has, to compare architectures), the probe images, and the study/probe tables.

Online (``WANDB_API_KEY`` or ``WANDB_MODE=online``) the workspace is saved to W&B and its URL printed.
Offline, or when saving fails, the workspace spec (the JSON of its pydantic model) is written to
``--out`` (default ``<runs>/workspace_<group>.json``) with one line saying that pushing needs network.
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gan_interp.errors import ConfigError, one_line_errors
from gan_interp.io import write_json
from gan_interp.wandb_inspect import LocalRun, find_runs, inspect_run

PARALLEL_MAX = 12  # readings in the parallel-coordinates plot
X_AXIS = "epoch"


def group_runs(root: Path, group: str) -> list[LocalRun]:
    """The runs under ``root`` whose W&B group is ``group``."""
    folders = find_runs(root)
    if not folders:
        raise ConfigError(
            f"--runs {root} holds no W&B runs (wandb/offline-run-* folders); point it at a run or sweep dir"
        )
    runs = [inspect_run(p) for p in folders]
    found = [r for r in runs if r.group == group]
    if not found:
        groups = ", ".join(sorted({r.group for r in runs}))
        raise ConfigError(f"--group {group!r}: no run under {root} is in it; its groups: {groups}")
    return found


def _union(runs: Sequence[LocalRun], kind: str, prefixes: tuple[str, ...]) -> list[str]:
    return sorted({k for r in runs for k in r.keys(kind) if k.startswith(prefixes)})


def _line(key: str) -> Any:
    import wandb_workspaces.reports.v2 as wr

    return wr.LinePlot(title=key, x=X_AXIS, y=[key])


def _media(key: str) -> Any:
    import wandb_workspaces.reports.v2 as wr

    return wr.MediaBrowser(title=key, media_keys=[key], mode="grid", grid_x_axis="step", grid_y_axis="run")


def _shared_readings(runs: Sequence[LocalRun]) -> list[str]:
    """Probe readings every training run logged (the architectures' common names), at most PARALLEL_MAX."""
    trained = [set(r.keys("scalar")) for r in runs if r.job_type == "train"] or [set(r.keys("scalar")) for r in runs]
    shared = set.intersection(*trained) if trained else set()
    return sorted(k for k in shared if k.startswith("probes/") and not k.endswith("time_s"))[:PARALLEL_MAX]


def _probe_sections(runs: Sequence[LocalRun]) -> list[Any]:
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    readings = _union(runs, "scalar", ("probes/",))
    by_probe: dict[str, list[str]] = {}
    for key in readings:
        by_probe.setdefault(key.split("/")[1], []).append(key)
    sections = []
    shared = _shared_readings(runs)
    if len(shared) >= 2:
        columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(k)) for k in shared]
        panel = wr.ParallelCoordinatesPlot(title="probe readings across runs (last value)", columns=columns)
        sections.append(ws.Section(name="Probe readings across runs", panels=[panel], is_open=True))
    for probe, keys in sorted(by_probe.items()):
        sections.append(ws.Section(name=f"Probe readings: {probe}", panels=[_line(k) for k in keys]))
    return sections


def _plain(text: str) -> str:
    """``text`` without symbol characters (``=``, ``+``, ...), which W&B refuses in workspace names."""
    return "".join(" " if unicodedata.category(c).startswith(("S", "Cs")) else c for c in text)


def build_workspace(entity: str, project: str, group: str, runs: Sequence[LocalRun], name: str | None = None) -> Any:
    """The workspace (``wandb_workspaces.workspaces.Workspace``) of ``runs``, filtered to ``group``."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    samples = _union(runs, "image", ("samples/", "kgan/"))
    curves = [k for k in _union(runs, "scalar", ("metrics/", "val/", "train/")) if not k.endswith("_step")]
    probe_images = _union(runs, "image", ("probes/",))
    study_tables = _union(runs, "table", ("study/",))
    probe_tables = _union(runs, "table", ("probes/",))
    sections = [
        ws.Section(name="Samples by epoch", panels=[_media(k) for k in samples], is_open=True),
        ws.Section(name="Metric curves", panels=[_line(k) for k in curves], is_open=True),
        *_probe_sections(runs),
        ws.Section(name="Probe images", panels=[_media(k) for k in probe_images]),
        ws.Section(name="Study tables", panels=[wr.WeavePanelSummaryTable(table_name=k) for k in study_tables]),
        ws.Section(name="Probe tables", panels=[wr.WeavePanelSummaryTable(table_name=k) for k in probe_tables]),
    ]
    return ws.Workspace(
        entity=entity,
        project=project,
        name=_plain(name or f"{group} (gan-interp)"),
        sections=[s for s in sections if s.panels],
        settings=ws.WorkspaceSettings(x_axis=X_AXIS, max_runs=max(10, len(runs))),
        runset_settings=ws.RunsetSettings(filters=[ws.Metric("Group") == group]),
    )


def workspace_spec(workspace: Any) -> dict[str, Any]:
    """The workspace as W&B stores it: the dump of its pydantic model (``View``)."""
    return workspace._to_model().model_dump(mode="json", by_alias=True, exclude_none=True)


def panel_keys(spec: dict[str, Any]) -> list[str]:
    """Every logged key a panel of ``spec`` reads (line-plot x and y, media, parallel axes, tables)."""
    keys = []
    for section in spec["spec"]["section"]["panelBankConfig"]["sections"]:
        for panel in section["panels"]:
            kind, config = panel["viewType"], panel["config"]
            if kind == "Run History Line Plot":
                keys += [*config["metrics"], config["xAxis"]]
            elif kind == "Media Browser":
                keys += config["mediaKeys"]
            elif kind == "Parallel Coordinates Plot":
                keys += [c["accessor"].split(":", 1)[1] for c in config["columns"]]
            elif kind == "Weave":
                keys.append(config["panel2Config"]["exp"]["fromOp"]["inputs"]["key"]["val"])
            else:
                raise ValueError(f"panel_keys: unknown panel type {kind!r}")
    return keys


def _push(workspace: Any) -> str | None:
    """Save the workspace to W&B; its URL, or None (with the reason printed) when that fails."""
    from gan_interp.logging_utils import wandb_mode

    if wandb_mode() != "online":
        return None
    try:
        return str(workspace.save().url)
    except Exception as exc:  # no network, no login, no such entity/project
        print(f"could not save the workspace to W&B: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entity", required=True, help="W&B entity (user or team)")
    parser.add_argument("--project", required=True, help="W&B project (logger.wandb.project: gan-interp)")
    parser.add_argument("--group", required=True, help="the runs' W&B group (a sweep's <sweep>-<time>)")
    parser.add_argument("--runs", type=Path, default=Path("outputs"), help="where the runs are (run or sweep dir)")
    parser.add_argument("--out", type=Path, default=None, help="write the workspace spec (JSON) here")
    parser.add_argument("--name", default=None, help="workspace name (default: '<group> (gan-interp)')")
    args = parser.parse_args(argv)
    with one_line_errors():
        try:
            import wandb_workspaces  # noqa: F401
        except ImportError:
            raise ConfigError("the dashboard needs wandb-workspaces: pip install -e .[dashboard]") from None
        runs = group_runs(args.runs, args.group)
        workspace = build_workspace(args.entity, args.project, args.group, runs, args.name)
    url = _push(workspace)
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", args.group)
    out = args.out or args.runs / f"workspace_{slug}.json"
    if url is None or args.out is not None:
        write_json(workspace_spec(workspace), out)
    if url is None:
        print(f"wrote the workspace spec of {len(runs)} runs to {out}; pushing it to W&B needs network and a login")
    else:
        print(f"workspace of {len(runs)} runs saved: {url}")
    return 0


def cli() -> None:
    """Console entry (``gan-interp-dashboard``)."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
