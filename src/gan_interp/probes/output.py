"""Where a probe's results go: PNG/JSON on disk, and images/tables into the probe run's :class:`LogRow`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from gan_interp.io import jsonable, save_png, write_json
from gan_interp.logging_utils import LogRow


class ProbeOutput:
    """Writes one probe's files under ``<out_dir>/<probe>/`` and adds them to ``row`` as ``probes/<probe>/<name>``.

    The row is the whole probe run's: :func:`~gan_interp.probes.runner.run_probes` logs it once,
    after every probe ran (images, tables and the readings of one epoch in one logger call).
    """

    def __init__(
        self,
        out_dir: Path,  # the <run>/probes/epoch_XXX folder
        probe: str,  # probe name (sub-folder and logger key prefix)
        row: LogRow | None = None,  # the probe run's logged row (None: files only)
    ) -> None:
        self.dir = Path(out_dir) / probe
        self.dir.mkdir(parents=True, exist_ok=True)
        self.probe, self.row = probe, row
        self.files: list[str] = []

    def key(self, name: str) -> str:
        return f"probes/{self.probe}/{name}"

    def image(self, name: str, image: torch.Tensor, caption: str | None = None, log_name: str | None = None) -> Path:
        """Save ``[3, H, W]`` in ``[0, 1]`` as ``<name>.png`` and add it to the row as ``log_name`` (default ``name``).

        ``log_name`` is for file names that carry a module name: the logged key uses the stage name
        (``ctx.stages``) so it is the same for every architecture. The caption says what rows and
        columns are (the row adds the epoch).
        """
        path = self.dir / f"{name}.png"
        img = image.detach().float().cpu().clamp(0, 1)
        save_png(img, path, caption=caption or name)  # the caption travels in the file (the review page shows it)
        if self.row is not None:
            self.row.image(self.key(log_name or name), img, caption=caption or name)
        self.files.append(path.name)
        return path

    def json(self, name: str, obj: Any) -> Path:
        path = write_json(obj, self.dir / f"{name}.json")
        self.files.append(path.name)
        return path

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
        """A table: ``<name>.json`` ({columns, rows}) on disk, a W&B table in the row."""
        rows = [list(jsonable(r)) for r in rows]
        if self.row is not None:
            self.row.table(self.key(name), list(columns), rows)
        return self.json(name, {"columns": list(columns), "rows": rows})
