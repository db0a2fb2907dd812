"""run_probes: all probes on a tiny DCGAN with data, registry, config errors, modes and RNG state."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from gan_interp.data import GANDataModule
from gan_interp.data.sources import FakeSource
from gan_interp.errors import ConfigError
from gan_interp.models import DCGAN
from gan_interp.probes.registry import PROBES, get_probe, register_probe
from gan_interp.probes.runner import normalize_probes_cfg, run_probes

SMALL = {
    "saliency": {"n": 3, "nt_samples": 2},
    "activations": {"n": 4, "max_channels": 4, "grid_layers": ["block0"]},
    "traversals": {"dims": 2, "steps": 3, "n_pairs": 1, "freeze_dims": 1, "n_resample": 3},
    "directions": {"k": 2, "steps": 3, "n_samples": 16},
    "actmax": {"channels": 2, "steps": 3},
    "filters": {},
    "neighbours": {"n": 3, "k": 2, "spaces": ["pixel", "feature"], "chunk_size": 5, "n_baseline": 4},
    "members": {"enabled": False},
}


@pytest.fixture(scope="module")
def dm(tmp_path_factory):
    d = GANDataModule(
        FakeSource(n=32, seed=0, channels=3),
        resolution=32,
        batch_size=8,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        val_fraction=0.125,
        test_fraction=0.125,
    )
    d.setup()
    return d


def _model() -> DCGAN:
    torch.manual_seed(0)
    return DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32)


def test_run_probes_runs_every_probe_and_restores_state(dm, tmp_path):
    model = _model()
    model.train()
    model.discriminator.blocks[1].eval()  # a submodule in its own mode must get it back
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    results = run_probes(model, dm, SMALL, tmp_path / "epoch_002", epoch=2, seed=0, strict=True)
    assert torch.equal(torch.rand(3), expected_next)  # training's RNG stream is untouched
    assert model.training and model.generator.training and not model.discriminator.blocks[1].training
    assert all(p.grad is None and p.requires_grad for p in model.parameters())

    assert set(results) == set(SMALL) - {"members"}  # enabled: false is skipped
    for name, summary in results.items():
        folder = tmp_path / "epoch_002" / name
        assert summary["time_s"] > 0 and "error" not in summary
        assert json.loads((folder / "summary.json").read_text())["time_s"] == summary["time_s"]
        assert list(folder.glob("*.png")), f"{name} wrote no image"
    assert {p.name for p in (tmp_path / "epoch_002" / "saliency").glob("*.png")} == {"real.png", "fake.png"}
    assert (
        len(results["neighbours"]["pixel"]["train_rows"]) == 3
        and len(results["neighbours"]["feature"]["train_rows"]) == 3
    )
    assert json.loads((tmp_path / "epoch_002" / "probes.json").read_text())["epoch"] == 2


def test_run_probes_is_deterministic_given_the_seed(dm, tmp_path):
    cfg = {"traversals": SMALL["traversals"], "saliency": SMALL["saliency"]}
    a = run_probes(_model(), dm, cfg, tmp_path / "a", 0, seed=5, strict=True)
    b = run_probes(
        _model(), dm, {"saliency": SMALL["saliency"]}, tmp_path / "b", 0, seed=5, strict=True
    )  # other probes do not matter
    assert a["saliency"]["fake"] == b["saliency"]["fake"]
    c = run_probes(_model(), dm, {"saliency": SMALL["saliency"]}, tmp_path / "c", 0, seed=6, strict=True)
    assert c["saliency"]["fake"] != a["saliency"]["fake"]


def test_config_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="probe 'salency' is not a known probe"):
        run_probes(_model(), None, {"salency": {}}, tmp_path, 0)
    with pytest.raises(ConfigError, match=r"probes.saliency.nt_sample is not an option of probe saliency"):
        run_probes(_model(), None, {"saliency": {"nt_sample": 3}}, tmp_path, 0)
    with pytest.raises(ConfigError, match="must be a mapping"):
        normalize_probes_cfg({"saliency": 3})


def test_normalize_accepts_the_whole_probes_node():
    node = {
        "_target_": "x.ProbeCallback",
        "epochs": [0],
        "probes": {"filters": None, "saliency": {"enabled": False}, "traversals": True, "actmax": False},
    }
    assert normalize_probes_cfg(node) == {"filters": {}, "traversals": {}}
    # schedule keys moved under their own (mapping) key, other node keys: only the probes map counts
    node = {
        "_target_": "x",
        "schedule": {"every_n_epochs": 2},
        "seed": 0,
        "cpu_threads": 1,
        "dirname": "p",
        "probes": {"filters": {}},
    }
    assert normalize_probes_cfg(node) == {"filters": {}}
    assert normalize_probes_cfg({"_target_": "x", "schedule": {"epochs": [0]}, "probes": None}) == {}
    assert normalize_probes_cfg({"filters": {"max_filters": 4}, "seed": 0}) == {"filters": {"max_filters": 4}}


def test_registered_probes_get_a_context_and_options(tmp_path):
    @register_probe("unit_test_probe")
    def _probe(ctx, scale: float = 1.0) -> dict:
        ctx.out.json("extra", {"step": ctx.step, "epoch": ctx.epoch})
        return {"value": scale * torch.rand(1).item(), "seed": ctx.seed, "dir": ctx.out.dir.name}

    try:
        r = run_probes(_model(), None, {"unit_test_probe": {"scale": 2.0}}, tmp_path, 4, step=7, seed=3)
        torch.manual_seed(3)
        assert r["unit_test_probe"]["value"] == pytest.approx(2.0 * torch.rand(1).item())  # reseeded before the probe
        assert r["unit_test_probe"]["seed"] == 3 and r["unit_test_probe"]["dir"] == "unit_test_probe"
        assert (tmp_path / "unit_test_probe" / "summary.json").is_file()
        assert json.loads((tmp_path / "unit_test_probe" / "extra.json").read_text()) == {"step": 7, "epoch": 4}
        assert get_probe("unit_test_probe").options() == ["scale"]  # the context is not an option
        with pytest.raises(ConfigError, match="probes.unit_test_probe.ctx is not an option"):
            run_probes(_model(), None, {"unit_test_probe": {"ctx": 1}}, tmp_path, 0)
    finally:
        PROBES.pop("unit_test_probe", None)


def test_probes_register_on_import_without_a_fallback_lookup(tmp_path, monkeypatch):
    # the dissection probe is registered by importing gan_interp.probes; the dissect package is not imported then
    code = "import sys, gan_interp.probes as p; print('dissection' in p.PROBES, 'gan_interp.dissect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
    # a module named after an unknown probe is not searched for
    import gan_interp

    (tmp_path / "lazy_unit_probe.py").write_text(
        "from gan_interp.probes.registry import register_probe\n\n"
        "@register_probe('lazy_unit_probe')\n"
        "def p(ctx):\n"
        "    return {'ok': True}\n"
    )
    monkeypatch.setattr(gan_interp, "__path__", [*gan_interp.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "gan_interp.lazy_unit_probe", raising=False)
    with pytest.raises(ConfigError, match="probe 'lazy_unit_probe' is not a known probe"):
        get_probe("lazy_unit_probe")
    assert "gan_interp.lazy_unit_probe" not in sys.modules


def test_a_requirement_decides_whether_a_probe_runs(tmp_path):
    calls = []

    @register_probe("unit_needs_members", requires=("members",))
    def _needs_members(ctx, n: int = 1) -> dict:
        calls.append(ctx.model)
        ctx.out.json("seen", {"members": ctx.model.n_members})
        return {"n": n}

    class _WithMembers(DCGAN):
        n_members = 2

    try:
        # the model lacks it: not called, no folder, the reason in probes.json
        r = run_probes(_model(), None, {"unit_needs_members": {"n": 2}, "filters": {}}, tmp_path / "a", 0, strict=True)
        assert calls == [] and set(r) == {"filters"} and not (tmp_path / "a" / "unit_needs_members").exists()
        record = json.loads((tmp_path / "a" / "probes.json").read_text())
        assert record["skipped"] == {"unit_needs_members": "model has no k-GAN members"}
        assert set(record["probes"]) == {"filters"}
        # the model has it: called, writes into its folder
        torch.manual_seed(0)
        model = _WithMembers(latent_dim=8, ngf=8, ndf=8, resolution=32)
        r = run_probes(model, None, {"unit_needs_members": {"n": 2}}, tmp_path / "b", 0, strict=True)
        assert calls == [model] and r["unit_needs_members"]["n"] == 2
        assert json.loads((tmp_path / "b" / "unit_needs_members" / "seen.json").read_text()) == {"members": 2}
        assert json.loads((tmp_path / "b" / "probes.json").read_text())["skipped"] == {}
    finally:
        PROBES.pop("unit_needs_members", None)
    with pytest.raises(ValueError, match="requires unknown"):
        register_probe("unit_bad_requirement", requires=("wings",))
    assert "unit_bad_requirement" not in PROBES


def test_requirement_checks_known_answers(dm, tmp_path):
    from gan_interp.data.sources import SyntheticPosterSource
    from gan_interp.probes.registry import REQUIREMENTS

    model = _model()
    checks = {name: req.check(model, dm) for name, req in REQUIREMENTS.items()}
    assert checks == {
        "members": False,
        "style_space": False,
        "datamodule": True,
        "concept_masks": False,
        "generator_layers": True,
        "discriminator_layers": True,
        "input_conv": True,
    }
    assert not REQUIREMENTS["datamodule"].check(model, None) and not REQUIREMENTS["concept_masks"].check(model, None)
    posters = GANDataModule(SyntheticPosterSource(n=16, seed=0), resolution=32, batch_size=8, cache_dir=str(tmp_path))
    posters.setup()
    assert REQUIREMENTS["concept_masks"].check(model, posters)  # synthetic posters come with concept masks


def test_a_failing_probe_is_recorded_unless_strict(tmp_path):
    @register_probe("unit_failing_probe")
    def _bad(ctx) -> dict:
        raise RuntimeError("boom")

    try:
        r = run_probes(_model(), None, {"unit_failing_probe": {}, "filters": {}}, tmp_path, 0)
        assert r["unit_failing_probe"]["error"] == "RuntimeError: boom" and "error" not in r["filters"]
        with pytest.raises(RuntimeError, match="boom"):
            run_probes(_model(), None, {"unit_failing_probe": {}}, tmp_path, 0, strict=True)
    finally:
        PROBES.pop("unit_failing_probe", None)
