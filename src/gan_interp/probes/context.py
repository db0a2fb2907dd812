"""What a probe receives: one :class:`ProbeContext` (the model, the data, where to write, seeds and steps)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gan_interp.logging_utils import LogRow
from gan_interp.probes.output import ProbeOutput
from gan_interp.probes.stages import StageNames, layer_stages


@dataclass(frozen=True)
class ProbeContext:
    """Everything a probe ``fn(ctx, **options) -> dict`` gets besides its options."""

    model: Any  # the GANModule probed (eval mode, under torch.no_grad)
    datamodule: Any | None  # a GANDataModule, or None (checked by the "datamodule" requirement)
    out: ProbeOutput  # writes <out_dir>/<probe>/ and adds images/tables to the run's row (probes/<probe>/<name>)
    seed: int = 0  # seed of the probe's inputs (fixed z, noise): the same every epoch
    step: int = 0  # trainer.global_step (non-W&B loggers' step)
    epoch: int = 0  # 0-based epoch the model was probed after
    loggers: tuple = ()  # Lightning loggers (the runner logs the row to them after all probes)
    stages: StageNames = field(default_factory=StageNames)  # module -> stage names (G_8px, D_16px, ...) for logged keys

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
        row: LogRow | None = None,  # the probe run's logged row (None: files only)
        stages: StageNames | None = None,  # None: computed from the model now (one forward pass)
    ) -> ProbeContext:
        """A context whose ``out`` writes into ``<out_dir>/<probe>/`` (created now)."""
        out = ProbeOutput(out_dir, probe, row)
        stages = layer_stages(model) if stages is None else stages
        return cls(model, datamodule, out, int(seed), int(step), int(epoch), tuple(loggers), stages)
