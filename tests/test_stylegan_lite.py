"""StyleGAN-lite: demodulation known answer, equalized lr, contract (w, ws, styles, EMA, truncation), training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gan_interp.config import validate_config
from gan_interp.errors import ConfigError
from gan_interp.models import model_class
from gan_interp.models.layers import EqualLinear, MinibatchStdDev, ModulatedConv2d
from gan_interp.models.stylegan_lite import StyleGANLite
from gan_interp.train import build, train

TINY = [
    "model=stylegan_lite",
    "data=fake",
    "model.latent_dim=16",
    "model.w_dim=16",
    "model.channel_base=256",
    "model.channel_max=16",
    "logger=none",
    "callbacks=none",
]


def tiny(**kw) -> StyleGANLite:
    args = dict(latent_dim=16, w_dim=16, n_mapping=2, channel_base=256, channel_max=16, resolution=32, channels=3)
    return StyleGANLite(**(args | kw))


def test_demodulation_keeps_unit_output_variance():
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 48, 3, w_dim=8, demodulate=True)
    x = torch.randn(4, 64, 32, 32)  # i.i.d. unit variance
    styles = 3.0 * torch.rand(4, 64) + 0.1  # arbitrary positive styles, far from 1
    with torch.no_grad():
        out = conv.modulated(x, styles)[..., 1:-1, 1:-1]  # interior: no zero padding in the receptive field
        w = conv.modulated_weight(styles)
    # exact: every demodulated filter has unit norm, so Var(out) = sum w''^2 Var(x) = 1
    assert torch.allclose(w.pow(2).sum(dim=(2, 3, 4)), torch.ones(4, 48), atol=1e-5)
    assert abs(float(out.std()) - 1.0) < 0.03 and abs(float(out.mean())) < 0.03
    plain = ModulatedConv2d(64, 48, 3, w_dim=8, demodulate=False)
    plain.weight.data.copy_(conv.weight.data)
    with torch.no_grad():
        raw = plain.modulated(x, styles)[..., 1:-1, 1:-1]
    assert float(raw.std()) > 1.5  # without demodulation the style scale leaks into the output


def test_grouped_modulated_conv_equals_per_sample_conv():
    torch.manual_seed(1)
    conv = ModulatedConv2d(5, 7, 3, w_dim=4)
    x, styles = torch.randn(3, 5, 8, 8), torch.randn(3, 5)
    with torch.no_grad():
        out = conv.modulated(x, styles)
        w = conv.modulated_weight(styles)
        ref = torch.cat([F.conv2d(x[i : i + 1], w[i], padding=1) for i in range(3)])
    assert torch.allclose(out, ref, atol=1e-5)


def test_mapping_learning_rate_multiplier():
    torch.manual_seed(2)
    slow, fast = EqualLinear(32, 32, lr_mul=0.01), EqualLinear(32, 32, lr_mul=1.0)
    # equalized lr: the applied weights have the same scale at init, the stored ones differ by 1/lr_mul
    assert abs(float(slow.effective_weight().detach().std()) - 32**-0.5) < 0.02
    assert abs(float(fast.effective_weight().detach().std()) - 32**-0.5) < 0.02
    assert abs(float(slow.weight.detach().std()) / float(fast.weight.detach().std()) - 100.0) < 15.0
    moves = []
    for layer in (slow, fast):
        before = layer.effective_weight().detach().clone()
        opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
        layer(torch.randn(8, 32)).pow(2).sum().backward()
        opt.step()  # Adam's first step moves every stored weight by ~lr
        moves.append(float((layer.effective_weight().detach() - before).abs().mean()))
    assert moves[0] / moves[1] == pytest.approx(0.01, rel=0.05)
    m = tiny()
    assert all(layer.lr_mul == 0.01 for layer in m.generator.mapping.net if isinstance(layer, EqualLinear))


def test_generator_contract_ws_styles_truncation_and_ema():
    torch.manual_seed(3)
    m = tiny()
    assert m.n_ws == 8 and tiny(resolution=64).n_ws == 10  # 2 log2(res) - 2
    z = m.sample_z(5, generator=torch.Generator().manual_seed(0))
    m.eval()
    with torch.no_grad():
        x1, x2 = m.generate(z), m.generate(z)
        w = m.mapping(z)
        ws = m.broadcast_ws(w)
        assert x1.shape == (5, 3, 32, 32) and torch.equal(x1, x2) and x1.abs().max() <= 1  # EMA + const noise
        assert w.shape == (5, 16) and ws.shape == (5, 8, 16)
        assert torch.equal(m.synthesize(ws), x1)
        styles = m.styles(ws)
        assert list(styles) == [
            "b4_conv1",
            "b4_torgb",
            "b8_conv0",
            "b8_conv1",
            "b8_torgb",
            "b16_conv0",
            "b16_conv1",
            "b16_torgb",
            "b32_conv0",
            "b32_conv1",
            "b32_torgb",
        ]
        assert styles["b8_conv0"].shape == (5, 16) and m.style_affine_weights()["b32_torgb"].shape == (
            8,
            16,
        )  # min(16, 256 // 32) channels
        # per-layer control: changing only the last w leaves the styles of earlier layers alone
        ws2 = ws.clone()
        ws2[:, -1] += 1.0
        assert torch.equal(m.styles(ws2)["b4_conv1"], styles["b4_conv1"])
        assert not torch.equal(m.styles(ws2)["b32_torgb"], styles["b32_torgb"])
        # StyleSpace edits: a zero delta changes nothing, a delta on one layer's style changes the image
        assert torch.equal(m.synthesize(ws, style_deltas={"b8_conv1": torch.zeros(16)}), x1)
        edited = m.synthesize(ws, style_deltas={"b8_conv1": torch.eye(16)[3] * 5.0})
        assert not torch.allclose(edited, x1) and torch.equal(m.synthesize(ws), x1)  # hooks removed again
        assert set(m.style_layers()) == set(styles)
        with pytest.raises(ConfigError, match="unknown layers"):
            m.synthesize(ws, style_deltas={"b128_conv0": torch.zeros(4)})
        # truncation psi=0 collapses every w onto w_avg: all images identical
        m.g_ema.mapping.w_avg.copy_(torch.randn(16))
        x0 = m.generate(z, truncation=0.0)
        assert torch.allclose(x0, x0[:1].expand_as(x0), atol=1e-6)
        assert torch.allclose(m.mapping(z, truncation=0.0), m.w_avg.expand(5, -1))
    # eval mode uses the EMA generator: changing the trained generator does not change samples
    with torch.no_grad():
        for p in m.generator.parameters():
            p.add_(0.5)
        assert torch.equal(m.generate(z, truncation=0.0), x0)
        before = [p.clone() for p in m.g_ema.parameters()]
        m.update_ema(0.5)
        for b, p_ema, p in zip(before, m.g_ema.parameters(), m.generator.parameters()):
            assert torch.allclose(p_ema, 0.5 * (b + p))
    # EMA decay: half-life of ema_kimg * 1000 images, ramped up to 5% of the images seen so far
    m.images_seen = 1000
    assert m.ema_beta(32) == pytest.approx(0.5 ** (32 / 50))
    m.images_seen = 10**7
    assert m.ema_beta(32) == pytest.approx(0.5 ** (32 / 10000))
    layers = m.generator_layers()
    assert "b16_conv1" in layers and layers["b16_conv1"] is m.g_ema.synthesis.convs["b16_conv1"]
    assert set(m.discriminator_layers()) == {"fromrgb", "b32", "b16", "b8", "epilogue"}
    assert m.critic(x1).shape == (5,)


def test_style_mixing_and_minibatch_stddev():
    torch.manual_seed(4)
    m = tiny(style_mixing_prob=1.0)
    ws = m._training_ws(4, update_w_avg=False)
    assert ws.shape == (4, 8, 16)
    changes = [(not torch.equal(ws[:, i], ws[:, i + 1])) for i in range(7)]
    assert sum(changes) == 1  # exactly one crossover layer
    never = tiny(style_mixing_prob=0.0)._training_ws(4, update_w_avg=False)
    assert all(torch.equal(never[:, 0], never[:, i]) for i in range(8))
    mbstd = MinibatchStdDev(group_size=4)
    same = torch.ones(8, 3, 4, 4)
    assert torch.allclose(mbstd(same)[:, 3], torch.full((8, 4, 4), 1e-4))  # identical samples: std 0 (+ eps)
    x = torch.randn(6, 3, 4, 4)  # 6 is not divisible by 4: groups of 3
    out = mbstd(x)
    grp = x.reshape(3, 2, 3, 4, 4)
    expected = ((grp - grp.mean(0)).pow(2).mean(0) + 1e-8).sqrt().mean(dim=(1, 2, 3))
    assert (
        out.shape == (6, 4, 4, 4)
        and torch.allclose(out[0, 3, 0, 0], expected[0])
        and torch.allclose(out[1, 3, 0, 0], expected[1])
    )
    assert mbstd(torch.randn(1, 3, 4, 4)).shape == (1, 4, 4, 4)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_fast_dev_run_with_lazy_r1(make_cfg, precision):
    cfg = make_cfg([*TINY, "++trainer.fast_dev_run=true", f"trainer.precision={precision}"])
    metrics = train(cfg)
    assert metrics["g_steps"] == 1.0
    assert metrics["train/r1"] >= 0 and torch.isfinite(torch.tensor(metrics["train/r1"]))  # R1 on minibatch 0
    assert torch.isfinite(torch.tensor([metrics["train/d_loss"], metrics["train/g_loss"]])).all()


def test_fp16_refused_and_bad_values(make_cfg):
    assert StyleGANLite.uses_double_backward and model_class("stylegan_lite") is StyleGANLite
    with pytest.raises(ConfigError, match="16-mixed"):
        validate_config(make_cfg([*TINY, "trainer.precision=16-mixed"]))
    with pytest.raises(ConfigError, match="data.resolution"):
        validate_config(make_cfg([*TINY, "data.resolution=128"]))
    with pytest.raises(ConfigError, match="model.lr"):
        validate_config(make_cfg([*TINY, "model.lr=-1"]))
    with pytest.raises(ConfigError, match="style_mixing_prob"):
        tiny(style_mixing_prob=1.5)


def test_interpretable_option_trains_stylegan_lite(make_cfg):
    cfg = make_cfg(
        [*TINY, "model.interpretable.enabled=true", "model.interpretable.n_concepts=2", "++trainer.fast_dev_run=true"]
    )
    datamodule, model, trainer = build(cfg)
    reg = model.interpretable
    assert reg is not None and reg.layer in model.generator_layers()
    opt_g, _ = model.configure_optimizers()
    assert any(p is reg.V for group in opt_g.param_groups for p in group["params"])
    trainer.fit(model, datamodule=datamodule)
    assert model.g_steps == 1 and math.isfinite(float(trainer.callback_metrics["train/interp_real"]))
