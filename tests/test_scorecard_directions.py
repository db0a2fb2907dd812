"""Scorecard directions check: coordinate sweeps, factor readings, the planted poster generator's known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_interp.data import GANDataModule
from gan_interp.data.sources import SyntheticPosterSource
from gan_interp.data.synthetic_posters import CONCEPTS, render_posters
from gan_interp.models import DCGAN
from gan_interp.probes.traversals import traverse_dim
from gan_interp.scorecard.directions import abs_corr, check_directions, set_coordinate
from gan_interp.scorecard.factors import REGRESSED_FACTORS, background_colour, brightness, factor_table
from gan_interp.scorecard.known_answers import PLANTED_DIMS, PlantedPosterGenerator
from gan_interp.scorecard.models import random_init_like


@pytest.fixture(scope="module")
def dm(tmp_path_factory) -> GANDataModule:
    cache = tmp_path_factory.mktemp("cache")
    data = GANDataModule(SyntheticPosterSource(n=320), resolution=32, cache_dir=str(cache), test_fraction=0.2)
    data.setup()
    return data


def test_set_coordinate_on_a_basis_vector_is_traverse_dim():
    g = torch.Generator().manual_seed(0)
    bases, values = torch.randn(3, 6, generator=g), torch.linspace(-2, 2, 5)
    swept = set_coordinate(bases, torch.eye(6)[2], values)
    assert torch.allclose(swept, torch.cat([traverse_dim(b, 2, values) for b in bases]))
    d = torch.randn(6, generator=g)
    d = d / d.norm()
    swept = set_coordinate(bases, d, values).view(3, 5, 6)
    assert torch.allclose(swept @ d, values.expand(3, 5), atol=1e-6)  # the coordinate takes each value
    rest = swept - (swept @ d).unsqueeze(-1) * d  # the orthogonal part is the base's
    assert torch.allclose(rest, (bases - (bases @ d).unsqueeze(1) * d).unsqueeze(1).expand(3, 5, 6), atol=1e-6)


def test_abs_corr_known_values():
    v = torch.linspace(-1, 1, 11)
    readings = torch.stack([3 * v + 1, -v, torch.ones(11), v**2], 1)
    assert torch.allclose(abs_corr(v, readings), torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-6)


def test_direct_factor_readings_match_the_rendered_colours():
    batch = render_posters(16, resolution=32, seed=1)
    images = torch.from_numpy(batch.images)
    luma = (images.float() / 255 * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    assert torch.allclose(brightness(images), luma.flatten(1).mean(1), atol=1e-6)
    bg = torch.from_numpy(batch.masks[:, 0])
    cols = background_colour(images, bg)
    expected = (luma * bg).flatten(1).sum(1) / bg.flatten(1).sum(1)
    assert torch.allclose(cols["bg_luminance"], expected, atol=1e-5)
    names, table = factor_table(images, batch.masks, batch.factors, CONCEPTS, ("figure_x", "bg_rg", "nonexistent"))
    assert names == ("figure_x", "bg_rg") and table.shape == (16, 2)
    assert np.allclose(table[:, 0].numpy(), batch.factors["figure_x"])


def test_planted_generator_single_dims_drive_their_factors():
    # known answer of the planted control, on its exact factors: each planted dim is the best one by far
    planted = PlantedPosterGenerator(32)
    z = planted.sample_z(1500, generator=torch.Generator().manual_seed(0))
    images, masks, factors = planted.render(z)
    assert images.shape == (1500, 3, 32, 32) and images.min() >= -1 and images.max() <= 1
    names, table = factor_table(images, masks, factors, CONCEPTS, REGRESSED_FACTORS)
    table = torch.cat([brightness(images).double().view(-1, 1), table], 1)
    names = ("brightness", *names)
    for factor, dim in PLANTED_DIMS.items():
        col = table[:, names.index(factor)]
        corr = torch.stack([abs_corr(z[:, j], col.view(-1, 1))[0] for j in range(planted.latent_dim)])
        assert int(corr.argmax()) == dim, factor
        assert corr[dim] >= 0.65 and corr.sort(descending=True).values[1] <= 0.35, factor
    assert float(abs_corr(z[:, 0], table).max()) < 0.1  # dim 0 (the genre) is fixed: inert


def test_check_directions_tiny_rows_and_planted_answer(dm):
    torch.manual_seed(0)
    ref = DCGAN(latent_dim=16, ngf=8, ndf=8, resolution=32).eval()
    rand = random_init_like(ref, seed=1)
    rows = check_directions(ref, rand, dm, seed=0, tiny=True)
    question, factor_rows = rows[0], rows[1:]
    assert question.reading.startswith("seed 000") and question.note.startswith("answer: single z dims")
    assert question.passed is True  # the planted brightness / colour knobs are found (exact readings)
    assert question.planted.startswith("yes: dim 32")
    names = [r.reading.split(" ")[3] for r in factor_rows]
    assert names[0] == "brightness" and set(PLANTED_DIMS) <= set(names)
    for row in factor_rows:
        assert row.passed in (True, False, None) and row.criterion
        assert isinstance(row.reference, str) and " vs " in row.reference
        if row.details["planted_dim"] is not None:  # every planted factor: its dim found, above random
            assert row.details["planted_ok"] is True, row.reading
            assert row.planted.startswith(f"dim {row.details['planted_dim']}:")
        if row.passed is None:
            assert row.note.startswith("unreadable")
    assert question.details["timing"]["total_s"] > 0 and question.details["scores"]["planted"]["dims"]
