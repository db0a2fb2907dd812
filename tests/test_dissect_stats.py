"""Quantile sketch, streaming IoU and the IQR threshold against exact, all-in-memory references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gan_interp.dissect.iou import ConceptTally, binary_iou, iqr_from_counts, upsample_maps
from gan_interp.dissect.quantile import QuantileSketch
from gan_interp.errors import ConfigError


def test_sketch_is_exact_before_any_compaction():
    x = torch.randn(5, 300, generator=torch.Generator().manual_seed(0))
    s = QuantileSketch(5, capacity=512)
    s.update(x[:, :100])
    s.update(x[:, 100:])
    q = torch.tensor([0.0, 0.1, 0.5, 0.99, 1.0])
    torch.testing.assert_close(s.quantile(q), torch.quantile(x, q, dim=1).T, atol=1e-6, rtol=0)
    assert s.quantile(0.5).shape == (5,)


def test_sketch_tracks_exact_quantiles_within_rank_tolerance_with_bounded_memory():
    g = torch.Generator().manual_seed(1)
    # ReLU-like streams with many ties at 0 and a heavy tail, different per unit
    x = torch.relu(torch.randn(6, 200_000, generator=g) * torch.arange(1, 7)[:, None] + 0.3) ** 1.5
    s = QuantileSketch(6, capacity=1024, seed=0)
    for chunk in x.split(7_777, dim=1):
        s.update(chunk)
    assert s.count == 200_000
    assert s.n_stored < 1024 * 12  # log-many levels, far below 200k
    qs = torch.tensor([0.5, 0.9, 0.99, 0.999])
    est = s.quantile(qs)
    exact = torch.quantile(x, qs, dim=1).T
    # rank error: fraction of values below the estimate vs the requested level
    ranks = (x[:, :, None] < est[:, None, :]).float().mean(1)
    assert (ranks - qs).abs().max() < 0.003
    assert torch.allclose(est[:, :3], exact[:, :3], rtol=0.02, atol=0.02)
    assert torch.equal(s.max, x.max(1).values)


def test_sketch_rejects_bad_input():
    with pytest.raises(ConfigError):
        QuantileSketch(3, capacity=15)
    s = QuantileSketch(3)
    with pytest.raises(ValueError):
        s.quantile(0.5)
    with pytest.raises(ValueError):
        s.update(torch.zeros(4, 10))


def _random_case(seed: int = 0, b: int = 12, u: int = 5, k: int = 3, h: int = 16):
    g = torch.Generator().manual_seed(seed)
    acts = torch.relu(torch.randn(b, u, h // 4, h // 4, generator=g))
    masks = torch.rand(b, k, h, h, generator=g) < torch.tensor([0.5, 0.2, 0.05])[:k, None, None]
    return upsample_maps(acts, h), masks


def test_streaming_iou_equals_dense_iou_for_every_threshold():
    acts, masks = _random_case()
    thr = torch.stack(
        [torch.zeros(5), torch.full((5,), 0.4), torch.quantile(acts.transpose(0, 1).flatten(1), 0.9, dim=1)], 1
    )
    tally = ConceptTally(thr, 3, max_elements=3 * 5 * 16 * 16)  # also splits each batch internally
    for lo in range(0, 12, 5):  # uneven batches
        tally.update(acts[lo : lo + 5], masks[lo : lo + 5])
    iou = tally.iou()
    for t in range(thr.shape[1]):
        dense = binary_iou(acts > thr[:, t][None, :, None, None], masks)
        torch.testing.assert_close(iou[:, t], dense, rtol=0, atol=1e-12)
    # thresholds given in any order come back in that order
    tally2 = ConceptTally(thr.flip(1), 3)
    tally2.update(acts, masks)
    torch.testing.assert_close(tally2.iou(), iou.flip(1), rtol=0, atol=1e-12)
    # concept mean activation
    ref = (acts[:, :, None] * masks[:, None]).sum((0, 3, 4)) / masks.sum((0, 2, 3))
    torch.testing.assert_close(tally.concept_mean_activation(), ref.float(), rtol=1e-5, atol=1e-6)


def _iqr_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """I(X;Y)/H(X,Y) of two binary arrays from the joint histogram (independent reference)."""
    joint = np.array([[np.mean(~x & ~y), np.mean(~x & y)], [np.mean(x & ~y), np.mean(x & y)]])
    px, py = joint.sum(1), joint.sum(0)
    h = lambda p: -sum(v * math.log(v) for v in np.ravel(p) if v > 0)  # noqa: E731
    hxy = h(joint)
    return (h(px) + h(py) - hxy) / hxy if hxy > 0 else 0.0


def test_iqr_threshold_picks_the_threshold_maximising_information_quality_ratio():
    g = torch.Generator().manual_seed(3)
    mask = torch.zeros(20, 1, 16, 16, dtype=torch.bool)
    mask[:, :, 4:10, 3:12] = True
    # a unit that is high on the concept plus noise, and sometimes high elsewhere
    act = mask.float() * 2.0 + 0.6 * torch.randn(20, 1, 16, 16, generator=g)
    candidates = torch.linspace(-1.0, 3.0, 41)[None, :]
    tally = ConceptTally(candidates, 1)
    tally.update(act, mask)
    iqr = tally.iqr()[0, :, 0]
    ref = torch.tensor(
        [_iqr_numpy((act > t).numpy().ravel(), mask.numpy().ravel()) for t in candidates[0]], dtype=torch.float64
    )
    torch.testing.assert_close(iqr, ref, rtol=1e-9, atol=1e-12)
    best = tally.best_iqr()
    assert int(best["threshold_index"][0, 0]) == int(ref.argmax())
    assert 0.6 < float(best["threshold"][0, 0]) < 1.4  # the midpoint between the two levels (1.0) is optimal
    # the IQR is 1 exactly for a perfect separation and 0 for independence
    one = iqr_from_counts(torch.tensor(30.0), torch.tensor(30.0), torch.tensor(30.0), 100.0)
    zero = iqr_from_counts(torch.tensor(25.0), torch.tensor(50.0), torch.tensor(50.0), 100.0)
    assert float(one) == pytest.approx(1.0) and float(zero) == pytest.approx(0.0, abs=1e-12)


def test_iqr_search_skips_anti_associated_thresholds():
    mask = torch.zeros(8, 1, 10, 10, dtype=torch.bool)
    mask[:, :, :, :8] = True  # a large concept: 80 % of the pixels
    # unit 0 is high off the concept (its complement); unit 1 is high on it
    act = torch.stack([(~mask[:, 0]).float(), mask[:, 0].float()], 1)
    tally = ConceptTally(torch.tensor([[0.5, -0.5], [0.5, -0.5]]), 1)
    tally.update(act, mask)
    raw = tally.iqr()[:, :, 0]
    assert float(raw[0, 0]) == pytest.approx(1.0)  # the ratio alone calls the complement a perfect match
    ok = tally.qualified()[:, :, 0]
    assert not ok[0, 0] and ok[1, 0] and not ok[:, 1].any()  # threshold -0.5: everything on, no association
    best = tally.best_iqr()
    assert float(best["iqr"][0, 0]) == 0.0 and float(best["iou"][0, 0]) == 0.0
    assert float(best["iqr"][1, 0]) == pytest.approx(1.0) and float(best["iou"][1, 0]) == pytest.approx(1.0)
