"""Two-sample check of the probe scorecard: known answers of its statistics and of each row's verdict."""

from __future__ import annotations

import math

import pytest
import torch

from gan_interp.scorecard.concepts import ConceptShift, concept_areas, concept_shift
from gan_interp.scorecard.metric_runs import null_z, uniformity
from gan_interp.scorecard.twosample import TINY, concept_rows, null_spread_rows, p_value_rows

NAMES = ["background", "orb", "figure"]


def test_uniformity_of_p_values():
    assert uniformity([(i + 0.5) / 20 for i in range(20)]) > 0.99  # evenly spread: uniform
    assert uniformity([0.001, 0.002, 0.003, 0.004, 0.005]) < 1e-6  # all tiny: not uniform
    assert math.isnan(uniformity([]))


def test_null_z_counts_null_sds_in_the_bad_direction():
    null = [9.0, 10.0, 11.0]  # mean 10, sd 1
    assert null_z(14.0, null) == pytest.approx(4.0)
    assert null_z(14.0, null, higher_is_worse=False) == pytest.approx(-4.0)
    assert null_z(7.0, null, higher_is_worse=False) == pytest.approx(3.0)
    assert null_z(10.0, [10.0, 10.0]) == 0.0 and null_z(11.0, [10.0, 10.0]) == math.inf
    assert math.isnan(null_z(float("nan"), null))


def test_concept_shift_names_the_missing_and_the_excess_concept():
    g = torch.Generator().manual_seed(0)
    real = torch.stack(
        [
            0.6 + 0.05 * torch.rand(200, generator=g),
            0.03 * torch.rand(200, generator=g),
            0.1 + 0.05 * torch.rand(200, generator=g),
        ],
        1,
    )
    same = torch.stack(
        [
            0.6 + 0.05 * torch.rand(200, generator=g),
            0.03 * torch.rand(200, generator=g),
            0.1 + 0.05 * torch.rand(200, generator=g),
        ],
        1,
    )
    no_orb = same.clone()
    no_orb[:, 0] += no_orb[:, 1]
    no_orb[:, 1] = 0.0
    null = concept_shift(same, real, NAMES)
    assert null.missing == [] and null.excess == [] and null.summary() == "none"
    shift = concept_shift(no_orb, real, NAMES)
    assert shift.missing == ["orb"] and shift.excess == ["background"]
    assert shift.p_value["orb"] < 1e-10 and shift.fake_area["orb"] == 0.0
    assert shift.summary().startswith("missing: orb (0.000 vs 0.01")
    assert concept_shift(torch.zeros(5, 3), torch.zeros(5, 3), NAMES).p_value == dict.fromkeys(NAMES, 1.0)


def test_concept_areas_are_pixel_shares_per_image():
    class Halves:
        concept_names = ["top", "bottom"]

        def __call__(self, x):
            m = torch.zeros(x.shape[0], 2, *x.shape[-2:], dtype=torch.bool)
            m[:, 0, : x.shape[-2] // 4] = True
            m[:, 1, x.shape[-2] // 4 :] = True
            return m

    areas = concept_areas(Halves(), torch.zeros(3, 3, 8, 8), batch_size=2)
    assert areas.shape == (3, 2) and torch.allclose(areas, torch.tensor([[0.25, 0.75]] * 3))


def _values(p: float, acc: float, fid: float, recall: float) -> dict[str, float]:
    return {
        "c2st_p_value": p,
        "c2st_accuracy": acc,
        "mmd_p_value": p,
        "mmd2": 0.01,
        "fid": fid,
        "kid_mean": fid / 10,
        "prdc_precision": 0.95,
        "prdc_recall": recall,
        "prdc_density": 1.0,
        "prdc_coverage": 0.95,
    }


def test_row_verdicts_follow_their_criteria():
    null = [_values(p, 0.5, f, r) for p, f, r in ((0.2, 20, 0.95), (0.5, 22, 0.96), (0.8, 24, 0.94))]
    read = {
        "reference": _values(1e-9, 0.9, 300, 0.2),
        "random init": _values(1e-30, 1.0, 800, 0.0),
        "no-orb": _values(1e-4, 0.62, 40, 0.80),
    }
    rows = p_value_rows(read, null, TINY)
    assert [r.passed for r in rows] == [True, True, True, True]  # uniform null p's; no-orb p < 0.01
    assert "flagged" in rows[1].reference and rows[0].details["null_p_values"] == [0.2, 0.5, 0.8]
    read["no-orb"]["c2st_p_value"] = 0.2
    assert p_value_rows(read, null, TINY)[1].passed is False
    spread = {r.reading.split(" vs ")[0]: r for r in null_spread_rows(read, null)}
    assert spread["FID (domain)"].passed and spread["FID (domain)"].details["z"]["no-orb"] == pytest.approx(9.0)
    assert spread["recall (domain, k=3)"].passed  # lower is worse: 0.80 is 15 sd below 0.95
    assert spread["precision (domain, k=3)"].passed  # fidelity: must not flag no-orb; equal to the null mean, z = 0
    read["no-orb"]["prdc_precision"] = 0.5
    assert {r.reading.split(" vs ")[0]: r for r in null_spread_rows(read, null)}[
        "precision (domain, k=3)"
    ].passed is False
    assert "|" not in "".join(r.reference + r.planted for r in rows)  # cells never break the Markdown table


def test_concept_rows_pass_only_when_orb_alone_is_missing():
    none = ConceptShift(dict.fromkeys(NAMES, 0.1), dict.fromkeys(NAMES, 0.1), dict.fromkeys(NAMES, 1.0))
    orb = ConceptShift(
        {"background": 0.2, "orb": 0.0, "figure": 0.1},
        dict.fromkeys(NAMES, 0.1),
        {"background": 1e-5, "orb": 1e-9, "figure": 1.0},
        missing=["orb"],
        excess=["background"],
    )
    shifts = {"reference": none, "random init": orb, "no-orb": orb}
    null_row, noorb_row = concept_rows(shifts, [none, none, none])
    assert null_row.passed and noorb_row.passed and "missing: orb" in noorb_row.planted
    assert concept_rows(shifts, [none, orb, none])[0].passed is False  # a flagged null seed (0 of 3 allowed)
    both = ConceptShift(orb.fake_area, orb.real_area, orb.p_value, missing=["orb", "figure"])
    assert concept_rows({**shifts, "no-orb": both}, [none])[1].passed is False
