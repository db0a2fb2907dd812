"""What a probe receives: one :class:`ProbeContext` (the model, the data, where to write, seeds and steps)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gan_interp.probes.output import ProbeOutput


@dataclass(frozen=True)
class ProbeContext:
    """Everything a probe ``fn(ctx, **options) -> dict`` gets besides its options."""

    model: Any  # the GANModule probed (eval mode, under torch.no_grad)
    datamodule: Any | None  # a GANDataModule, or None (checked by the "datamodule" requirement)
    out: ProbeOutput  # writes <out_dir>/<probe>/ and logs probes/<probe>/<name> at `step`
    seed: int = 0  # seed of the probe's inputs (fixed z, noise): the same every epoch
    step: int = 0  # logger step (trainer.global_step)
    epoch: int = 0  # 0-based epoch the model was probed after
    loggers: tuple = ()  # Lightning loggers (ctx.out logs to them already)

    @classmethod
    def create(
        cls,
        probe: str,  # the probe's name: its sub-folder and logger key prefix
        model: Any,
        datamodule: Any | None,
        out_dir: Path,  # the <run>/probes/epoch_XXX folder
        seed: int = 0,
        step: int = 0,
        epoch: int = 0,
        loggers: Iterable = (),
    ) -> ProbeContext:
        """A context whose ``out`` writes into ``<out_dir>/<probe>/`` (created now)."""
        loggers = tuple(loggers)
        out = ProbeOutput(out_dir, probe, loggers, step)
        return cls(model, datamodule, out, int(seed), int(step), int(epoch), loggers)
