"""Per-cell training batches for ensembles whose members own cells of the data (k-GAN).

:class:`CellBatchSampler` yields batches of ``k * batch_size`` dataset positions: ``batch_size`` from
each of the ``k`` cells, cell-major (rows ``j*B:(j+1)*B`` of a batch are cell j's), so every member
trains on a full batch of its own cell. The cells come from a callable (the model's partition,
read when an epoch's iteration starts: a partition recomputed at the epoch start is used at once).

* **Epoch**: ``max(1, (n // k) // batch_size)`` batches, i.e. one pass over the data when the cells
  are balanced (sizes ``n // k`` or ``n // k + 1``). The length does not depend on the cells, so it
  is known before the first partition exists. A cell with fewer rows than an epoch needs (possible
  only for unbalanced cells) is cycled: further seeded permutations of it are appended.
* **Deterministic**: cell j's order in epoch e is a permutation seeded by ``(seed, e, j)`` only;
  the same cells give the same batches in any process.
* **Resumable**: ``skip`` batches of the current epoch are left out once (a mid-epoch resume; set by
  the data module from its checkpoint state), as :class:`ResumableRandomSampler` does with samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

CellsOfRows = Callable[[torch.Tensor], torch.Tensor]  # cache rows [n] -> cell of each row [n] (0..k-1)


def cell_order(positions: np.ndarray, length: int, seed: int) -> np.ndarray:
    """``length`` positions of one cell: seeded permutations of ``positions``, concatenated as needed."""
    if len(positions) == 0:
        raise RuntimeError("a cell of the k-GAN partition is empty; per-cell batches need rows in every cell")
    reps = -(-length // len(positions))
    g = torch.Generator().manual_seed(seed % (2**63 - 1))
    parts = [positions[torch.randperm(len(positions), generator=g).numpy()] for _ in range(reps)]
    return np.concatenate(parts)[:length]


class CellBatchSampler(Sampler[list[int]]):
    """Batches of ``batch_size`` positions from each of ``k`` cells (cell-major); see the module docstring."""

    def __init__(
        self,
        rows: np.ndarray,  # cache row of every dataset position (the split's indices)
        k: int,  # number of cells
        batch_size: int,  # positions per cell per batch
        cells_of_rows: CellsOfRows,  # the current cell of cache rows (read when an epoch starts)
        seed: int = 0,  # the run's seed
    ) -> None:
        self.rows, self.k, self.batch_size = np.asarray(rows, dtype=np.int64), int(k), int(batch_size)
        self.cells_of_rows, self.seed = cells_of_rows, int(seed)
        self.epoch, self.skip = 0, 0

    @property
    def sampler(self) -> CellBatchSampler:
        """Lightning calls ``batch_sampler.sampler.set_epoch(epoch)`` at every epoch start: this object."""
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return max(1, (len(self.rows) // self.k) // self.batch_size)

    def batches(self) -> list[np.ndarray]:
        """This epoch's batches (all of them, ``skip`` not applied)."""
        cells = self.cells_of_rows(torch.from_numpy(self.rows)).numpy()
        n_batches, b = len(self), self.batch_size
        base = (self.seed * 1_000_003 + self.epoch) * 1_000_033
        orders = [cell_order(np.flatnonzero(cells == j), n_batches * b, base + j) for j in range(self.k)]
        return [np.concatenate([o[i * b : (i + 1) * b] for o in orders]) for i in range(n_batches)]

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0  # skip only once, on the resumed epoch
        return self._iterate(skip)

    def _iterate(self, skip: int) -> Iterator[list[int]]:
        # a generator: the cells are read at the first batch, after the epoch-start hooks ran
        for batch in self.batches()[skip:]:
            yield batch.tolist()


__all__ = ["CellBatchSampler", "CellsOfRows", "cell_order"]
