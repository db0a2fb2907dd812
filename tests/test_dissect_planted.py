"""Known-answer dissection on a hand-built generator whose units are known concept masks.

``SquareGAN`` draws a red square (the concept) on black at a latent-chosen position. Its layer
``feat`` has four units at image resolution: unit 0 *is* the square's mask (times a per-sample
intensity in [0.6, 1]), unit 1 is a smooth
latent-dependent pattern unrelated to it, unit 2 the mask shifted by half a square, unit 3 a
constant. The image is painted from unit 0 alone, so ablating unit 0 removes the concept.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor, nn

from gan_interp.dissect.dissection import dissect, resolve_layer
from gan_interp.dissect.intervene import ace_curve, average_causal_effect, edit_units, rank_artifact_units
from gan_interp.dissect.segmenter import ColourSegmenter, build_segmenter
from gan_interp.errors import ConfigError
from gan_interp.models.base import GANModule


class _Planted(nn.Module):
    def __init__(self, res: int, side: int) -> None:
        super().__init__()
        self.res, self.side = res, side

    def forward(self, z: Tensor) -> Tensor:
        r, s = self.res, self.side
        idx = torch.arange(r)
        gain = 0.6 + 0.4 * torch.sigmoid(z[:, 3])[:, None, None]  # per-sample intensity of the square
        x0 = (torch.sigmoid(z[:, 0]) * (r - s)).long()[:, None]
        y0 = (torch.sigmoid(z[:, 1]) * (r - s)).long()[:, None]
        cols = (idx[None] >= x0) & (idx[None] < x0 + s)
        rows = (idx[None] >= y0) & (idx[None] < y0 + s)
        square = (rows[:, :, None] & cols[:, None, :]).float()
        shifted = torch.roll(square, shifts=s // 2, dims=2)
        square = square * gain
        yy, xx = torch.meshgrid(idx.float(), idx.float(), indexing="ij")
        wave = 0.5 + 0.5 * torch.sin(z[:, 2, None, None] * 3 + xx * 0.4 + yy * 0.3)
        const = torch.full_like(square, 0.5)
        return torch.stack([square, wave, shifted, const], 1)


class _Paint(nn.Module):
    def forward(self, maps: Tensor) -> Tensor:
        red = maps[:, :1].clamp(0, 1)
        return torch.cat([2 * red - 1, -torch.ones_like(red), -torch.ones_like(red)], 1)


class SquareGAN(GANModule):
    def __init__(self, res: int = 32, side: int = 3) -> None:
        super().__init__(latent_dim=4, resolution=res, channels=3)
        self.feat, self.paint = _Planted(res, side), _Paint()
        self.dummy = nn.Parameter(torch.zeros(()))  # a device anchor

    def generate(self, z: Tensor) -> Tensor:
        return self.paint(self.feat(z))

    def critic(self, x: Tensor) -> Tensor:
        return -x[:, 0].flatten(1).mean(1)  # "prefers" less red: red units are artifact units

    def generator_layers(self) -> dict[str, nn.Module]:
        return {"feat": self.feat, "paint": self.paint}


RED_ON_BLACK = {"_target_": "gan_interp.dissect.segmenter.ColourSegmenter", "texture": False}


def test_planted_unit_gets_iou_one_and_its_concept_with_the_top_quantile_threshold():
    model = SquareGAN(side=3)  # 9 of 1024 pixels < 1 %: the top-1 % threshold falls between 0 and 1
    seg = build_segmenter(RED_ON_BLACK)  # the user-supplied (_target_) segmenter path
    res = dissect(model, seg, "feat", n_samples=96, batch_size=32, quantile=0.01, sketch_capacity=256)
    red = seg.concept_names.index("red")
    concept, iou = res.best("quantile")
    assert int(concept[0]) == red
    assert float(iou[0]) == pytest.approx(1.0)
    assert float(res.iou[0, red]) == 1.0
    assert float(res.iou[2, red]) < 0.6 and float(res.iou[1, red]) < 0.2  # shifted copy, unrelated pattern
    assert res.concept_fraction[red] == pytest.approx(9 / 1024)
    assert res.units_for("red", 1).tolist() == [0]
    js = res.to_json()
    assert js["units"][0]["concept"] == "red" and js["units"][0]["iou"] == pytest.approx(1.0)
    json.dumps(js)


def test_planted_unit_gets_iou_one_with_the_iqr_threshold_when_the_concept_is_large():
    model = SquareGAN(side=10)  # ~10 % of the pixels: the top-1 % threshold alone cannot cover it
    seg = ColourSegmenter(texture=False)
    res = dissect(model, seg, "feat", n_samples=64, batch_size=32)
    red = seg.concept_names.index("red")
    assert float(res.iou[0, red]) < 0.5  # top-quantile threshold: too strict for a big concept
    concept, iou = res.best("iqr")
    assert int(concept[0]) == red
    assert float(iou[0]) == pytest.approx(1.0)
    assert float(res.iqr[0, red]) == pytest.approx(1.0)
    assert float(res.iqr_iou[1, red]) < 0.5


def test_ablating_the_units_that_draw_a_concept_removes_it_and_inserting_adds_it():
    model = SquareGAN(side=6)
    seg = ColourSegmenter(texture=False)
    red = seg.concept_names.index("red")
    res = dissect(model, seg, "feat", n_samples=64, batch_size=32)
    ablate = ace_curve(model, res, seg, "red", n_units=[1], mode="ablate", n_samples=32)[0]
    assert ablate["units"] == [0]
    assert ablate["fraction_before"] == pytest.approx(36 / 1024)  # the square is red at every intensity
    assert ablate["fraction_after"] == 0.0 and ablate["ace"] == pytest.approx(-36 / 1024)
    insert = average_causal_effect(model, "feat", [0], seg, red, value=1.0, n_samples=32)
    assert insert["fraction_after"] == 1.0 and insert["ace"] > 0.9
    # ablating an unrelated unit changes nothing
    assert average_causal_effect(model, "feat", [1, 3], seg, red, n_samples=32)["ace"] == 0.0
    # the hook is removed after the context
    z = model.sample_z(4, generator=torch.Generator().manual_seed(0))
    with edit_units(model, "feat", [0]):
        assert (model.generate(z)[:, 0] == -1).all()
    assert (model.generate(z)[:, 0] > 0).any()


def test_artifact_units_are_the_ones_correlated_with_a_low_critic_score():
    order, corr = rank_artifact_units(SquareGAN(side=6), "feat", n_samples=64, batch_size=32)
    # only unit 0 (the red square: the critic dislikes red) varies with the score; constant unit 3 has corr 0
    assert int(order[0]) == 0 and float(corr[0]) == pytest.approx(1.0, abs=1e-5)
    assert float(corr[3]) == 0.0


def test_errors_name_the_bad_value():
    model = SquareGAN()
    with pytest.raises(ConfigError, match="layer='nope'"):
        dissect(model, ColourSegmenter(), "nope", n_samples=4)
    with pytest.raises(ConfigError, match="quantile"):
        dissect(model, ColourSegmenter(), "feat", n_samples=4, quantile=1.5)
    with pytest.raises(ConfigError, match="segmenter"):
        build_segmenter("nonsense")
    assert resolve_layer(model, None) == "feat"


def test_shuffled_masks_drop_every_readout_of_the_planted_unit():
    model, seg = SquareGAN(side=10), ColourSegmenter(texture=False)
    red = seg.concept_names.index("red")
    real = dissect(model, seg, "feat", n_samples=64, batch_size=32)
    shuffled = dissect(model, seg, "feat", n_samples=64, batch_size=32, mask_shift=1)
    assert float(real.iqr_iou[0, red]) == pytest.approx(1.0) and float(shuffled.iqr_iou[0, red]) < 0.3
    assert float(real.iqr[0, red]) == pytest.approx(1.0) and float(shuffled.iqr[0, red]) < 0.1
    assert real.summary()["iqr"]["mean_best_ratio"] > shuffled.summary()["iqr"]["mean_best_ratio"] + 0.2


def test_iqr_readout_labels_by_ratio_and_never_by_a_complement_or_area():
    """A unit that is *off* on the square (its complement) has ratio 1 with it but is not a square detector;
    the readout labels units by ratio among positively associated, agreeing thresholds only."""
    model, seg = SquareGAN(side=10), ColourSegmenter(texture=False)
    orig = model.feat.forward
    ramp = 0.9 + 0.1 * torch.linspace(0, 1, 32)  # distinct values, so quantile thresholds can cut between them

    def with_complement(z: Tensor) -> Tensor:  # unit 4: on exactly where the square is not
        maps = orig(z)
        return torch.cat([maps, (maps[:, :1] == 0).float() * ramp], 1)

    model.feat.forward = with_complement
    res = dissect(model, seg, "feat", n_samples=64, batch_size=32)
    red, black = seg.concept_names.index("red"), seg.concept_names.index("black")
    k, iou = res.best("iqr")
    assert int(k[0]) == red and float(iou[0]) == pytest.approx(1.0)
    assert float(res.iqr[4, red]) == 0.0  # anti-associated: not qualified
    assert int(k[4]) == black and float(iou[4]) > 0.95  # the black background (90 %; the ladder stops at 89 %)
    assert res.interpretable("iqr")[[0, 4]].all() and not res.interpretable("iqr")[3]  # the constant unit


def test_planted_posters_units_are_their_concept_masks_with_known_answers():
    from gan_interp.data.datamodule import uint8_to_model
    from gan_interp.data.synthetic_posters import CONCEPTS, render_posters
    from gan_interp.dissect.planted import PlantedPosterGAN

    batch = render_posters(24, resolution=32, seed=5)
    images, masks = uint8_to_model(torch.from_numpy(batch.images)), torch.from_numpy(batch.masks)
    planted = PlantedPosterGAN(images, masks)

    class Oracle:  # the ground-truth masks of a planted poster (found by exact image match)
        concept_names = list(CONCEPTS)

        def __call__(self, x: Tensor) -> Tensor:
            d = (x[:, None] - images[None]).flatten(2).abs().sum(2)
            return masks[d.argmin(1)]

    res = dissect(planted, Oracle(), "concepts", n_samples=96, batch_size=32)
    present = [c for c in range(len(CONCEPTS)) if res.concept_fraction[c] > 0.002]
    k_iqr, iou_iqr = res.best("iqr")
    k_q, _ = res.best("quantile")
    for c in present:
        area = float(res.concept_fraction[c])
        assert int(k_iqr[c]) == c and float(iou_iqr[c]) == pytest.approx(1.0), CONCEPTS[c]
        assert int(k_q[c]) == c and float(res.iou[c, c]) == pytest.approx(min(1.0, 0.01 / area), rel=0.15)
    # ablating a concept's unit repaints its pixels with what lies beneath (averages of the lower concepts'
    # colours of the same poster), nothing else
    z = planted.sample_z(8, generator=torch.Generator().manual_seed(0))
    orb = CONCEPTS.index("orb")
    with edit_units(planted, "concepts", [orb]):
        after = planted.generate(z)
    before = planted.generate(z)
    idx = (0.5 * (1 + torch.erf(z[:, 0] / 2**0.5)) * 24).long().clamp(0, 23)  # the poster each latent shows
    owner = planted.owner[idx]
    own = owner == orb
    assert own.any()  # some of these posters have an orb
    assert torch.equal(after.permute(0, 2, 3, 1)[~own], before.permute(0, 2, 3, 1)[~own])
    for b in range(8):
        if own[b].any():
            below = images[idx[b]][:, owner[b] < orb]  # [C, n] colours of the concepts under the orb
            got = after[b][:, own[b]]
            lo, hi = below.min(1).values[:, None] - 1e-5, below.max(1).values[:, None] + 1e-5
            assert ((got >= lo) & (got <= hi)).all() and not torch.equal(got, before[b][:, own[b]])
