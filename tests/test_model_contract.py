"""The GANModule contract's defaults and overrides: SeFa weight, input conv, members, the style-space protocol."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from gan_interp.errors import ConfigError
from gan_interp.models import DCGAN
from gan_interp.models.base import GANModule, StyleSpace, has_style_space
from gan_interp.models.kgan import KGAN, KGANMemberView
from gan_interp.models.stylegan_lite import StyleGANLite


def _stylegan() -> StyleGANLite:
    torch.manual_seed(0)
    return StyleGANLite(latent_dim=16, w_dim=8, n_mapping=2, channel_base=256, channel_max=16, resolution=32)


def test_dcgan_uses_the_defaults():
    model = DCGAN(latent_dim=8, ngf=8, ndf=8, resolution=32)
    weight, space = model.sefa_weight()
    assert space == "z" and torch.equal(weight, model.generator.blocks[0][0].weight)
    assert weight.shape == (8, 32, 4, 4) and not weight.requires_grad  # ConvTranspose2d [nz, C, 4, 4], detached
    assert model.discriminator_input_conv() is model.discriminator.blocks[0][0]  # Conv2d(3 -> ndf)
    assert model.n_members == 0 and not has_style_space(model)
    with pytest.raises(ConfigError, match="model DCGAN has no members"):
        model.member_view(0)


def test_stylegan_lite_overrides_and_style_space():
    model = _stylegan().eval()
    assert isinstance(model, StyleSpace) and has_style_space(model)
    weight, space = model.sefa_weight()
    affines = model.style_affine_weights()
    expected = torch.cat([affines[n] for n in model.g_eval.synthesis.convs])  # every conv's affine, no ToRGB
    assert space == "w" and torch.equal(weight, expected) and weight.shape[1] == 8
    assert model.discriminator_input_conv() is model.discriminator.fromrgb
    assert model.n_members == 0
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    w = model.mapping(z)
    assert w.shape == (3, model.w_dim) and model.broadcast_ws(w).shape == (3, model.n_ws, 8)
    assert torch.equal(model.synthesize(w), model.generate(z))  # [n, w_dim] is broadcast to every layer


def test_kgan_members_and_member_zero_weights():
    torch.manual_seed(0)
    model = KGAN(latent_dim=8, k=3, ngf=4, ndf=4, resolution=32)
    assert model.n_members == 3 and not has_style_space(model)
    assert not hasattr(model, "generator") and not hasattr(model, "discriminator")  # no stand-in properties
    weight, space = model.sefa_weight()
    assert space == "z" and torch.equal(weight, model.members[0].generator.stages["fc"][0].weight)  # thesis: Linear
    assert model.discriminator_input_conv() is model.members[0].discriminator.stages["block0"][0]
    view = model.member_view(2)
    assert isinstance(view, KGANMemberView) and view.j == 2 and view.n_members == 0
    # a member view uses the GANModule defaults on that member's own stages
    assert torch.equal(view.sefa_weight()[0], model.members[2].generator.stages["fc"][0].weight)
    assert torch.equal(view.sefa_weight()[0], model.sefa_weight(member=2)[0])
    assert view.discriminator_input_conv() is model.members[2].discriminator.stages["block0"][0]
    with pytest.raises(ConfigError, match="member=3 does not exist"):
        model.member_view(3)


def test_kgan_dcgan_arch_sefa_weight_is_the_first_transposed_conv():
    model = KGAN(latent_dim=8, k=2, arch="dcgan", ngf=4, ndf=4, resolution=32)
    weight, space = model.sefa_weight()
    assert space == "z" and torch.equal(weight, model.members[0].generator.stages["block0"][1].weight)


class _Bare(GANModule):
    """No layers exposed: the defaults have nothing to find."""

    def generate(self, z: Tensor) -> Tensor:
        return z

    def critic(self, x: Tensor) -> Tensor:
        return x.flatten(1).sum(1)


def test_defaults_without_layers():
    model = _Bare(latent_dim=4, resolution=32, channels=3)
    assert model.discriminator_input_conv() is None and model.n_members == 0 and not has_style_space(model)
    with pytest.raises(ValueError, match="override sefa_weight"):
        model.sefa_weight()


def test_style_space_protocol_is_structural():
    class _Stub(nn.Module):
        n_ws, w_dim = 3, 4

        def mapping(self, z, truncation=None):
            return z

        def synthesize(self, ws):
            return ws

        def broadcast_ws(self, w):
            return w[:, None].expand(-1, self.n_ws, -1)

    assert has_style_space(_Stub())
    del _Stub.w_dim
    assert not has_style_space(_Stub())
