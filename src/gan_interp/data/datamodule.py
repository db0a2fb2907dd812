"""One LightningDataModule for every image source.

Images are decoded once into a uint8 cache (see :mod:`gan_interp.data.cache`), split by a seeded
permutation that is persisted next to the cache (and copied into the run directory), and served
as float tensors in ``[-1, 1]``. A batch is a dict ``{"image": [B,C,H,W], "index": [B]}`` where
``index`` is the row in the cache, so partition-based models (k-GAN) and probes can look data up.
A model whose members own cells of the data calls :meth:`GANDataModule.use_cell_batches`: training
batches then hold ``batch_size`` images of every cell (:mod:`gan_interp.data.cell_batches`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gan_interp.data.cache import CachedImages, build_cache, load_cache
from gan_interp.data.cell_batches import CellBatchSampler, CellsOfRows
from gan_interp.data.channels import check_channels
from gan_interp.data.decode import check_aspect
from gan_interp.data.sampling import probe_order, probe_rng
from gan_interp.data.sources import ImageSource
from gan_interp.errors import ConfigError
from gan_interp.io import write_json, write_text

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def uint8_to_model(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the range every generator outputs)."""
    return x.float().div_(127.5).sub_(1.0)


def model_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255]."""
    return x.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def make_split(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[int]]:
    """Seeded random split of ``range(n)`` into train/val/test index lists (sorted)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    if n - n_val - n_test < 1:
        raise ConfigError(
            f"data.val_fraction={val_fraction} + data.test_fraction={test_fraction} leave no training images of {n}"
        )
    return {
        "val": sorted(perm[:n_val].tolist()),
        "test": sorted(perm[n_val : n_val + n_test].tolist()),
        "train": sorted(perm[n_val + n_test :].tolist()),
    }


MIN_STEPS_PER_EPOCH = 3  # a tiny training set gets a smaller batch rather than one-step epochs


def fit_batch_size(n_train: int, batch_size: int) -> int:
    """The batch size for ``n_train`` training images: unchanged when an epoch has at least
    MIN_STEPS_PER_EPOCH batches, else ``n_train // MIN_STEPS_PER_EPOCH`` (at least 2, never above n_train)."""
    if n_train >= MIN_STEPS_PER_EPOCH * batch_size:
        return batch_size
    return max(1, min(n_train, batch_size, max(2, n_train // MIN_STEPS_PER_EPOCH)))


class CachedImageDataset(Dataset):
    """Rows of a uint8 array served as ``{"image": float [-1,1], "index": int}``; batched fetch."""

    def __init__(self, images: np.ndarray, indices: list[int] | np.ndarray) -> None:
        self.images = images
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        rows = self.indices[np.asarray(positions, dtype=np.int64)]
        order = np.argsort(rows)  # sorted reads are friendlier to a memmap
        batch = np.empty((len(rows), *self.images.shape[1:]), dtype=np.uint8)
        batch[order] = self.images[rows[order]]
        return {"image": uint8_to_model(torch.from_numpy(batch)), "index": torch.from_numpy(rows)}


class ResumableRandomSampler(Sampler[int]):
    """Shuffles with a permutation seeded by (seed, epoch), so any epoch's order can be rebuilt,
    and can skip the batches an interrupted run already consumed (mid-epoch resume)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch, self.skip = n, int(seed), 0, 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at every epoch start
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % (2**63 - 1))
        order = torch.randperm(self.n, generator=g).tolist()
        skip, self.skip = self.skip, 0  # skip only once, on the resumed epoch
        return iter(order[skip:])


def collate_batched(batch: dict[str, torch.Tensor] | list) -> dict[str, torch.Tensor]:
    """The dataset already returns whole batches (``__getitems__``); single items are squeezed."""
    if isinstance(batch, dict):
        return batch
    return {k: torch.cat([b[k] for b in batch]) for k in batch[0]}


class GANDataModule(L.LightningDataModule):
    """Shared DataModule: decode-once cache, persisted seeded split, fast batched loading."""

    def __init__(
        self,
        source: ImageSource,  # where the images come from (see gan_interp.data.sources)
        name: str = "data",  # config name of the data group (for run names)
        resolution: int = 64,  # side length of the square images fed to the models
        channels: int | None = 3,  # 3 = RGB, 1 = grayscale, None = inferred from the source's images
        aspect: str = "center_crop",  # 'center_crop' or 'letterbox' for non-square sources
        batch_size: int = 64,
        num_workers: int = 0,  # loader processes; 0 is fastest for the in-RAM uint8 cache
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        split_seed: int = 0,
        cache_dir: str = ".cache/gan_interp",
        decode_workers: int = 4,  # threads decoding image files when building the cache
        drop_last: bool = True,
        pin_memory: bool = False,
        root: str | None = None,  # informational (the source holds the real path)
    ) -> None:
        super().__init__()
        check_aspect(aspect)
        if batch_size < 1:
            raise ConfigError(f"data.batch_size={batch_size} must be >= 1")
        self.source = source
        self.name = name
        self.resolution = int(resolution)
        self.channels = check_channels(channels) or source.infer_channels()
        if getattr(source, "channels", None) is None:
            source.channels = self.channels
        self.aspect = aspect
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.cache_dir = Path(cache_dir).expanduser()
        self.decode_workers = decode_workers
        self.drop_last, self.pin_memory = drop_last, pin_memory
        self.data: CachedImages | None = None
        self.split: dict[str, list[int]] = {}
        self._probe_orders: dict[str, np.ndarray] = {}  # per split: the probe sample's order (sample_positions)
        self._train_sampler: ResumableRandomSampler | CellBatchSampler | None = None
        self._cells: tuple[int, CellsOfRows] | None = None  # (k, cells of cache rows): per-cell batches
        self._resume_batches = 0  # batches of the current epoch already done by an interrupted run
        self._shuffle_seed = torch.initial_seed()  # the run's seed (seed_everything ran before us)

    # -- cache & split -------------------------------------------------------------------------
    def prepare_data(self) -> None:
        self.source.check()
        build_cache(self.source, self.cache_dir, self.resolution, self.channels, self.aspect, self.decode_workers)

    def _split_path(self) -> Path:
        assert self.data is not None and self.data.path is not None
        return self.data.path / f"split-seed{self.split_seed}-val{self.val_fraction}-test{self.test_fraction}.json"

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        self.source.check()
        entry = build_cache(
            self.source, self.cache_dir, self.resolution, self.channels, self.aspect, self.decode_workers
        )
        self.data = load_cache(entry)
        if len(self.data) == 0:
            raise ConfigError(f"data source {self.source.name!r} produced no readable images (see warnings above)")
        split_file = self._split_path()
        if split_file.is_file():
            self.split = json.loads(split_file.read_text())
        else:
            self.split = make_split(len(self.data), self.val_fraction, self.test_fraction, self.split_seed)
            write_json(self.split, split_file, indent=None)
        self._fit_batch_size(len(self.split["train"]))
        log.info(
            "data %s: %s images (train %d / val %d / test %d), cache %s",
            self.name,
            len(self.data),
            len(self.split["train"]),
            len(self.split["val"]),
            len(self.split["test"]),
            entry,
        )

    def _fit_batch_size(self, n_train: int) -> None:
        """A tiny dataset warns once and trains with a batch that gives a few steps per epoch."""
        fitted = fit_batch_size(n_train, self.batch_size)
        if fitted != self.batch_size:
            log.warning(
                "data.batch_size=%d is too large for %d training images (%d step(s) per epoch): using %d "
                "(at least %d steps per epoch); set data.batch_size<=%d to choose yourself",
                self.batch_size,
                n_train,
                max(1, n_train // self.batch_size),
                fitted,
                MIN_STEPS_PER_EPOCH,
                fitted,
            )
            self.batch_size = fitted

    def save_split(self, run_dir: str | Path) -> Path:
        """Copy the split (with the cache entry it indexes) into a run directory."""
        out = Path(run_dir) / "data_split.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"cache_entry": str(self.data.path) if self.data else None, **self.split}
        write_text(out, json.dumps(meta))  # atomic: complete or absent
        return out

    # -- accessors used by probes/metrics --------------------------------------------------------
    def dataset(self, split: str = "train") -> CachedImageDataset:
        if split not in SPLITS:
            raise ConfigError(f"split={split!r} must be one of {', '.join(SPLITS)}")
        self.setup()
        assert self.data is not None
        return CachedImageDataset(self.data.images, self.split[split])

    def sample_positions(self, split: str = "train", n: int | None = None) -> np.ndarray:
        """Positions (into ``dataset(split)``) of the split's probe sample: ``n`` images drawn at random,
        stratified by class when the data has labels, the same every call and epoch (seeded by the
        split seed, independent of the training RNG; see :mod:`gan_interp.data.sampling`).
        ``n=None``: the whole split in cache order."""
        ds = self.dataset(split)
        if n is None:
            return np.arange(len(ds), dtype=np.int64)
        if split not in self._probe_orders:
            assert self.data is not None
            labels = None if self.data.labels is None else self.data.labels[ds.indices]
            self._probe_orders[split] = probe_order(len(ds), labels, probe_rng(self.split_seed, split))
        return self._probe_orders[split][: max(0, int(n))]

    def images(self, split: str = "train", n: int | None = None) -> torch.Tensor:
        """The probe sample of a split (:meth:`sample_positions`) as float [-1, 1]."""
        positions = self.sample_positions(split, n)
        return self.dataset(split).__getitems__(positions.tolist())["image"] if len(positions) else torch.empty(0)

    def images_with_masks(self, split: str = "train", n: int | None = None) -> tuple[torch.Tensor, np.ndarray | None]:
        """The probe sample of a split and the concept masks of the same images (None without masks)."""
        positions = self.sample_positions(split, n)
        assert self.data is not None
        masks = None if self.data.masks is None else self.data.masks[self.dataset(split).indices[positions]]
        return self.images(split, n), masks

    def masks(self, split: str = "train") -> np.ndarray | None:
        """Ground-truth concept masks (bool [N,K,H,W]) of a split, if the source has them."""
        self.setup()
        assert self.data is not None
        if self.data.masks is None:
            return None
        return self.data.masks[np.asarray(self.split[split], dtype=np.int64)]

    @property
    def concept_names(self) -> list[str]:
        self.setup()
        assert self.data is not None
        return self.data.concept_names

    # -- loaders ----------------------------------------------------------------------------------
    def use_cell_batches(self, k: int, cells_of_rows: CellsOfRows) -> None:
        """Train on batches of ``batch_size`` images from each of ``k`` cells (cell-major, ``k * batch_size``
        rows); ``cells_of_rows`` gives the current cell of cache rows. Call before the train loader is built."""
        self._cells = (int(k), cells_of_rows)

    def _loader(self, split: str, shuffle: bool, drop_last: bool) -> DataLoader:
        ds = self.dataset(split)
        batch_size = min(self.batch_size, max(1, len(ds)))
        common = {
            "num_workers": self.num_workers,
            "persistent_workers": self.num_workers > 0,
            "pin_memory": self.pin_memory,
            "collate_fn": collate_batched,
        }
        if shuffle and self._cells is not None:
            k, cells_of_rows = self._cells
            cell_sampler = CellBatchSampler(ds.indices, k, batch_size, cells_of_rows, seed=self._shuffle_seed)
            self._train_sampler = cell_sampler
            cell_sampler.skip, self._resume_batches = self._resume_batches, 0  # mid-epoch resume (batches)
            return DataLoader(ds, batch_sampler=cell_sampler, **common)
        sampler = None
        if shuffle:
            sampler = self._train_sampler = ResumableRandomSampler(len(ds), seed=self._shuffle_seed)
            sampler.skip, self._resume_batches = self._resume_batches * batch_size, 0  # mid-epoch resume
        drop = drop_last and len(ds) >= self.batch_size
        return DataLoader(ds, batch_size=batch_size, sampler=sampler, drop_last=drop, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val" if self.split.get("val") else "train", shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test" if self.split.get("test") else "val", shuffle=False, drop_last=False)

    # -- checkpoint state: where in the epoch a (mid-epoch) checkpoint was taken -----------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"split_seed": self.split_seed, "n": len(self.data) if self.data is not None else None}
        trainer = getattr(self, "trainer", None)
        if trainer is not None and self._train_sampler is not None:
            # a checkpoint taken in on_train_batch_end has processed (not yet completed) this batch
            done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
            state["batches_done"] = done if done < trainer.num_training_batches else 0  # 0: epoch finished
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_batches = int(state_dict.get("batches_done", 0))
