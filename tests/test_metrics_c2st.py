"""C2ST: known answers on identical / separable samples, the p-value formula, the conv variant."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import norm

from gan_interp.metrics.c2st import c2st, c2st_p_value


def test_p_value_is_the_normal_tail_with_variance_one_over_4n() -> None:
    assert c2st_p_value(0.5, 100) == pytest.approx(0.5)
    assert c2st_p_value(0.6, 100) == pytest.approx(norm.sf(2.0))  # sd = 1/(2*sqrt(100)) = 0.05
    assert c2st_p_value(0.4, 100) == pytest.approx(norm.sf(-2.0))


def test_identical_distributions_give_chance_accuracy() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    res = c2st(a, b, classifier="mlp", epochs=10, min_steps=40, seed=0)
    assert res.n_test == 400 and res.n_train == 400
    sd = (1 / (4 * res.n_test)) ** 0.5
    assert abs(res.accuracy - 0.5) < 3.5 * sd
    assert res.p_value > 0.01


def test_separable_distributions_give_accuracy_one() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g) + 2.5
    res = c2st(a, b, classifier="logistic", epochs=20, seed=0)
    assert res.accuracy > 0.97
    assert res.p_value < 1e-30


def test_conv_classifier_on_images() -> None:
    g = torch.Generator().manual_seed(2)
    dark = torch.rand(64, 3, 8, 8, generator=g) * 0.4 - 1.0
    light = dark.clone()
    light[:, :, 2:6, 2:6] = 0.8  # a bright square only the second sample has
    res = c2st(dark, light, classifier="auto", epochs=1, min_steps=60, batch_size=32, lr=3e-3, seed=0)
    assert res.accuracy > 0.95
    u8 = (dark.add(1).mul(127.5)).round().to(torch.uint8)  # uint8 images are accepted too
    assert c2st(u8, u8.flip(0), epochs=1, min_steps=20, seed=0).accuracy <= 0.75


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        c2st(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="must be one of"):
        c2st(torch.zeros(4, 3), torch.zeros(4, 3), classifier="svm")


def test_unequal_sample_sizes_are_balanced() -> None:
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(40, 4, generator=g), torch.randn(400, 4, generator=g)
    res = c2st(a, b, classifier="logistic", epochs=5, seed=0)
    assert res.n_train + res.n_test == 80  # 40 of each: always predicting "fake" cannot score 400/440
    assert res.accuracy < 0.75
