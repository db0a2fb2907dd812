"""Per-cell training batches (k-GAN): full batches of every cell, cell-major, deterministic and resumable."""

from __future__ import annotations

import numpy as np
import torch

from gan_interp.data import GANDataModule
from gan_interp.data.cell_batches import CellBatchSampler, cell_order
from gan_interp.data.sources import FakeSource

ROWS = np.arange(100, 130)  # cache rows of 30 dataset positions
CELLS = torch.tensor([0, 1, 2] * 10)  # cell of each row (by position)


def _cells(rows: torch.Tensor) -> torch.Tensor:
    return CELLS[rows - 100]


def test_batches_hold_batch_size_positions_of_every_cell_in_cell_order():
    sampler = CellBatchSampler(ROWS, k=3, batch_size=4, cells_of_rows=_cells, seed=7)
    assert len(sampler) == 2 and sampler.sampler is sampler  # (30 // 3) // 4; Lightning's set_epoch finds it
    batches = list(sampler)
    assert len(batches) == 2 and all(len(b) == 12 for b in batches)
    for b in batches:
        assert CELLS[b].tolist() == [0] * 4 + [1] * 4 + [2] * 4  # cell-major blocks of the batch size
    seen = np.concatenate(batches)
    assert len(set(seen.tolist())) == 24  # no position twice within an epoch
    # deterministic in (seed, epoch), another epoch another order, the same cells
    assert [b for b in CellBatchSampler(ROWS, 3, 4, _cells, seed=7)] == batches
    sampler.set_epoch(1)
    other = list(sampler)
    assert other != batches and all(CELLS[b].tolist() == [0] * 4 + [1] * 4 + [2] * 4 for b in other)


def test_cells_are_read_when_the_epoch_starts_and_a_resume_skips_done_batches():
    cells = {"now": CELLS}
    sampler = CellBatchSampler(ROWS, k=3, batch_size=2, cells_of_rows=lambda r: cells["now"][r - 100])
    it = iter(sampler)  # Lightning creates the iterator before the epoch-start hooks
    cells["now"] = torch.tensor([0] * 10 + [1] * 10 + [2] * 10)  # ... where the partition is recomputed
    first = next(it)
    assert cells["now"][first].tolist() == [0, 0, 1, 1, 2, 2]
    full = sampler.batches()
    assert np.array_equal(first, full[0]) and len(full) == 5  # (30 // 3) // 2
    sampler.skip = 3  # a checkpoint taken after 3 batches of this epoch
    resumed = list(sampler)
    assert len(resumed) == len(full) - 3 and all(np.array_equal(a, b) for a, b in zip(resumed, full[3:]))
    assert len(list(sampler)) == len(full)  # the skip applies once


def test_a_small_cell_is_cycled_with_fresh_permutations():
    order = cell_order(np.array([5, 6, 7]), length=8, seed=1)
    assert len(order) == 8 and sorted(order[:3].tolist()) == [5, 6, 7] and sorted(order[3:6].tolist()) == [5, 6, 7]


def test_datamodule_serves_cell_batches_after_use_cell_batches(tmp_path):
    dm = GANDataModule(FakeSource(n=64), resolution=32, batch_size=4, cache_dir=str(tmp_path), decode_workers=1)
    dm.prepare_data()
    dm.setup()
    rows = dm.dataset("train").indices
    cell_of_row = {int(r): i % 2 for i, r in enumerate(rows)}
    dm.use_cell_batches(2, lambda r: torch.tensor([cell_of_row[int(x)] for x in r]))
    loader = dm.train_dataloader()
    assert len(loader) == (len(rows) // 2) // 4
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 3, 32, 32)
    assert [cell_of_row[int(r)] for r in batch["index"]] == [0] * 4 + [1] * 4
