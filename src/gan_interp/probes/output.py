"""Where a probe's results go: PNG/JSON on disk and images/tables/metrics to every logger."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import save_image

from gan_interp.io import jsonable, write_json
from gan_interp.logging_utils import log_image, log_table


class ProbeOutput:
    """Writes one probe's files under ``<out_dir>/<probe>/`` and logs them as ``probes/<probe>/<name>``."""

    def __init__(
        self,
        out_dir: Path,  # the <run>/probes/epoch_XXX folder
        probe: str,  # probe name (sub-folder and logger key prefix)
        loggers: Iterable = (),  # Lightning loggers to log images/tables to
        step: int = 0,  # logger step (trainer.global_step)
    ) -> None:
        self.dir = Path(out_dir) / probe
        self.dir.mkdir(parents=True, exist_ok=True)
        self.probe, self.loggers, self.step = probe, list(loggers), int(step)
        self.files: list[str] = []

    def key(self, name: str) -> str:
        return f"probes/{self.probe}/{name}"

    def image(self, name: str, image: torch.Tensor, caption: str | None = None) -> Path:
        """Save ``[3, H, W]`` in ``[0, 1]`` as ``<name>.png`` and log it to every logger."""
        path = self.dir / f"{name}.png"
        img = image.detach().float().cpu().clamp(0, 1)
        save_image(img, path)
        # always pass a caption: WandbLogger.log_image fails on caption=None
        log_image(self.loggers, self.key(name), img, step=self.step, caption=caption or name)
        self.files.append(path.name)
        return path

    def json(self, name: str, obj: Any) -> Path:
        path = write_json(obj, self.dir / f"{name}.json")
        self.files.append(path.name)
        return path

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
        """A table: ``<name>.json`` ({columns, rows}) on disk, a W&B table for W&B loggers."""
        rows = [list(jsonable(r)) for r in rows]
        log_table(self.loggers, self.key(name), list(columns), rows, step=self.step)
        return self.json(name, {"columns": list(columns), "rows": rows})
