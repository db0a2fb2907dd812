"""Evaluation metrics at scale: time and peak memory for n generated vs n real (10k vs 10k; quick: 1k).

Each case runs in a fresh spawned process; "mem" is the peak RSS while the metric runs (sampled
every 20 ms) minus the RSS just before it, i.e. what the metric itself needed beyond its inputs.
On a shared, oversubscribed CPU, torch's intra-op threads can slow tiny conv nets down several
fold; run with ``OMP_NUM_THREADS=1`` to compare like with like (the thread count is reported).
Cases: MMD^2 + 200-permutation test on 768-d pooled pixels, C2ST (conv net on 32 px images
and MLP on 64-d features), the quality measures streamed over 64 px images, the memorisation
score, FID/KID/IS on 64-d features, SSIM on 32 px images (256 nearest-real queries per set,
512 intra-set pairs), precision/recall/density/coverage on 64-d features, and the whole
``evaluate()`` (metrics=all minus the Inception path) of a 64 px DCGAN against a 64 px fake data set.
Targets (CPU): each metric < 120 s and < 1 GiB extra memory at 10k vs 10k; the full evaluation
< 600 s. A dense 20k x 20k float64 kernel alone would need 3.2 GB, so the MMD row shows
the chunking at work.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import tempfile
import time
from typing import Any

TIME_TARGET_S = 120.0
MEM_TARGET_MB = 1024.0
FULL_TARGET_S = 600.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # peak so far (Linux: KiB)


def _current_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


class _PeakSampler:
    """Samples the current RSS every 20 ms from ``start()``: the peak of the measured section only."""

    def __init__(self) -> None:
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _current_rss_mb())
            self._stop.wait(0.02)

    def start(self) -> float:
        base = _current_rss_mb()
        self.peak = base
        self._thread.start()
        return base

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _current_rss_mb())


def _case(name: str, n: int) -> dict[str, Any]:
    """Runs in the child: build inputs, measure one metric."""
    import torch

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    sampler = _PeakSampler()
    detail = ""
    if name == "mmd_pixels768":
        from gan_interp.metrics.mmd import mmd_test

        x, y = torch.randn(n, 768, generator=g), torch.randn(n, 768, generator=g) + 0.05
        base = sampler.start()
        t0 = time.perf_counter()
        res = mmd_test(x, y, n_permutations=200)
        detail = f"mmd2={res.mmd2:.3g} p={res.p_value:.3g}"
    elif name == "c2st_conv32":
        from gan_interp.metrics.c2st import c2st

        x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
        y = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
        base = sampler.start()
        t0 = time.perf_counter()
        res = c2st(x, y, classifier="conv", epochs=10)
        detail = f"acc={res.accuracy:.3f} (identical distributions)"
    elif name == "c2st_mlp64":
        from gan_interp.metrics.c2st import c2st

        x, y = torch.randn(n, 64, generator=g), torch.randn(n, 64, generator=g)
        base = sampler.start()
        t0 = time.perf_counter()
        res = c2st(x, y, classifier="mlp", epochs=10)
        detail = f"acc={res.accuracy:.3f} (identical distributions)"
    elif name == "quality_64px":
        from gan_interp.metrics.quality import QualityAccumulator

        base = sampler.start()
        t0 = time.perf_counter()
        acc = QualityAccumulator()
        for b0 in range(0, 2 * n, 256):  # real and fake streams, generated batch by batch
            acc.update(torch.rand(min(256, 2 * n - b0), 3, 64, 64, generator=g) * 2 - 1)
        detail = f"{2 * n} images streamed"
    elif name == "memorisation_768":
        from gan_interp.metrics.memorisation import memorisation_score

        fake, train, held = (torch.randn(n, 768, generator=g) for _ in range(3))
        base = sampler.start()
        t0 = time.perf_counter()
        res = memorisation_score(fake, train, held)
        detail = f"nn_ratio={res['nn_ratio']:.3f}"
    elif name == "fid_kid_is_64":
        from gan_interp.metrics.fid import FeatureMetrics

        real, fake, logits = (
            torch.randn(n, 64, generator=g),
            torch.randn(n, 64, generator=g),
            torch.randn(n, 10, generator=g),
        )
        base = sampler.start()
        t0 = time.perf_counter()
        fm = FeatureMetrics(64, kid_subsets=50, kid_subset_size=1000)
        for b0 in range(0, n, 256):
            fm.update_real(real[b0 : b0 + 256])
            fm.update_fake(fake[b0 : b0 + 256], logits[b0 : b0 + 256])
        res = fm.compute()
        detail = f"fid={res['fid']:.3g}"
    elif name == "ssim_32px":
        from gan_interp.metrics.ssim import ssim_scores

        real, fake = (torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8) for _ in range(2))
        base = sampler.start()
        t0 = time.perf_counter()
        res = ssim_scores(real, fake)
        detail = f"nn_fake={res['nn_fake']:.3f} pairs_fake={res['pairs_fake']:.3f}"
    elif name == "prdc_64":
        from gan_interp.metrics.prdc import prdc

        real, fake = torch.randn(n, 64, generator=g), torch.randn(n, 64, generator=g)
        base = sampler.start()
        t0 = time.perf_counter()
        res = prdc(real, fake)
        detail = " ".join(f"{k}={v:.3f}" for k, v in res.items()) + " (identical distributions)"
    elif name == "evaluate_all_dcgan64":
        from gan_interp.data import GANDataModule
        from gan_interp.data.sources import FakeSource
        from gan_interp.metrics.runner import evaluate
        from gan_interp.metrics.settings import MetricsSettings
        from gan_interp.models import DCGAN

        tmp = tempfile.mkdtemp()
        dm = GANDataModule(
            FakeSource(n=int(n * 1.25) + 8, seed=0),
            resolution=64,
            cache_dir=tmp,
            batch_size=64,
            val_fraction=0.1,
            test_fraction=0.1,
        )
        dm.setup()
        model = DCGAN(resolution=64)
        base = sampler.start()
        t0 = time.perf_counter()
        cfg = {
            "mmd": {"space": "features", "n_permutations": 200},
            "c2st": {"space": "images", "epochs": 10},
            "quality": {},
            "memorisation": {"space": "pixels"},
            "fid": {},
            "kid": {},
            "is": {},
            "ssim": {},
            "prdc": {},
        }
        res = evaluate(model, dm, MetricsSettings(metrics=cfg, n=n, features="domain", cache_dir=tmp, batch_size=128))
        detail = "; ".join(f"{k} {v:.1f}s" for k, v in res.info["seconds"].items() if k != "total")
    else:
        raise ValueError(name)
    seconds = time.perf_counter() - t0
    peak = sampler.stop()
    return {
        "seconds": seconds,
        "peak_mb": _rss_mb(),
        "extra_mb": peak - base,
        "detail": detail,
        "threads": torch.get_num_threads(),
    }


def _run_isolated(name: str, n: int) -> dict[str, Any]:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_case, (name, n))


def run(quick: bool = False) -> list[dict]:
    n = 1000 if quick else 10_000
    rows = []
    for name in (
        "mmd_pixels768",
        "c2st_conv32",
        "c2st_mlp64",
        "quality_64px",
        "memorisation_768",
        "fid_kid_is_64",
        "ssim_32px",
        "prdc_64",
        "evaluate_all_dcgan64",
    ):
        r = _run_isolated(name, n)
        t_target = FULL_TARGET_S if name.startswith("evaluate") else TIME_TARGET_S
        rows.append(
            {
                "name": f"{name} {n}v{n} time",
                "measured": f"{r['seconds']:.1f}s",
                "target": f"<{t_target:.0f}s",
                "ok": r["seconds"] < t_target,
                "detail": r["detail"],
            }
        )
        rows.append(
            {
                "name": f"{name} {n}v{n} mem",
                "measured": f"{r['extra_mb']:.0f}MB",
                "target": f"<{MEM_TARGET_MB:.0f}MB",
                "ok": r["extra_mb"] < MEM_TARGET_MB,
                "detail": f"RSS peak of the section over its start; process peak {r['peak_mb']:.0f}MB; torch threads "
                "{r['threads']}",
            }
        )
    return rows
