"""StyleGAN2 building blocks (Karras et al. 2020), small and readable.

* equalized learning rate: weights are stored ``~ N(0, 1) / lr_mul`` and scaled at run time by
  ``lr_mul / sqrt(fan_in)`` (so Adam's step in the effective weight is multiplied by ``lr_mul``;
  the mapping network uses ``lr_mul = 0.01``);
* :class:`ModulatedConv2d`: per-sample weights ``w'_{o,i,k} = s_i w_{o,i,k}`` (styles ``s`` from an
  affine map of ``w``), demodulated ``w'' = w' / sqrt(sum_{i,k} w'^2 + eps)`` so that unit-variance
  i.i.d. inputs give unit-variance outputs; implemented as one grouped convolution;
* :class:`NoiseInjection` (a learned scalar per layer), :class:`MinibatchStdDev` (Karras et al. 2018).

Upsampling is bilinear x2 before the 3x3 convolution ("lite": no transposed conv + FIR blur).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SQRT2 = math.sqrt(2.0)


def lrelu_gain(x: Tensor) -> Tensor:
    """Leaky ReLU (0.2) times sqrt(2): keeps the second moment of N(0,1) inputs near 1."""
    return F.leaky_relu(x, 0.2) * SQRT2


class PixelNorm(nn.Module):
    """Normalise each vector to unit root-mean-square."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate (optionally fused leaky ReLU with gain)."""

    def __init__(
        self,
        in_dim: int,  # input features
        out_dim: int,  # output features
        bias: bool = True,
        bias_init: float = 0.0,  # initial (effective) bias, 1.0 for style affines
        lr_mul: float = 1.0,  # learning-rate multiplier (0.01 in the mapping network)
        activation: bool = False,  # apply lrelu_gain
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init) / lr_mul)) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def effective_weight(self) -> Tensor:
        """The weight actually applied, ``[out_dim, in_dim]``."""
        return self.weight * self.scale

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        out = F.linear(x, self.effective_weight(), bias)
        return lrelu_gain(out) if self.activation else out


class EqualConv2d(nn.Module):
    """Conv2d with equalized learning rate ('same' padding)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, bias: bool = True, activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.padding = kernel // 2
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        out = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)
        return lrelu_gain(out) if self.activation else out


class ModulatedConv2d(nn.Module):
    """Style-modulated (and by default demodulated) convolution; one grouped conv per batch."""

    def __init__(
        self,
        in_ch: int,  # input channels
        out_ch: int,  # output channels
        kernel: int,  # square kernel size (3, or 1 for ToRGB)
        w_dim: int,  # size of the w vector driving the style affine
        demodulate: bool = True,
        upsample: bool = False,  # bilinear x2 before the convolution
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)  # styles start at 1
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.in_ch, self.out_ch, self.kernel = in_ch, out_ch, kernel
        self.demodulate, self.upsample = demodulate, upsample

    def modulated_weight(self, styles: Tensor) -> Tensor:
        """Per-sample weights ``[n, out, in, k, k]`` for styles ``[n, in]``."""
        w = self.scale * self.weight[None] * styles[:, None, :, None, None].to(self.weight.dtype)
        if self.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        return w

    def modulated(self, x: Tensor, styles: Tensor) -> Tensor:
        """Convolve ``x [n, in, H, W]`` with the weights modulated by ``styles [n, in]``."""
        n = x.shape[0]
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        weight = self.modulated_weight(styles).reshape(n * self.out_ch, self.in_ch, self.kernel, self.kernel)
        h, w = x.shape[-2:]
        out = F.conv2d(x.reshape(1, n * self.in_ch, h, w), weight.to(x.dtype), padding=self.kernel // 2, groups=n)
        return out.reshape(n, self.out_ch, h, w)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.modulated(x, self.affine(w))


class NoiseInjection(nn.Module):
    """``x + strength * noise``; one learned strength per layer (starts at 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, noise: Tensor | None) -> Tensor:
        return x if noise is None else x + self.strength * noise.to(x.dtype)


class StyledConv(nn.Module):
    """Modulated 3x3 conv -> noise -> bias -> lrelu_gain (one synthesis layer, one w)."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, w_dim, demodulate=True, upsample=upsample)
        self.noise = NoiseInjection()
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))
        self.resolution = resolution
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))  # eval-mode noise

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        out = self.conv(x, w)
        if noise_mode == "random":
            noise = torch.randn(out.shape[0], 1, *out.shape[-2:], device=out.device)
        elif noise_mode == "const":
            noise = self.noise_const
        else:
            noise = None
        return lrelu_gain(self.noise(out, noise) + self.bias.to(out.dtype))


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels (no demodulation) + bias, added to the upsampled skip."""

    def __init__(self, in_ch: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor, w: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, w) + self.bias.to(x.dtype)
        if skip is not None:
            out = out + F.interpolate(skip, size=out.shape[-2:], mode="bilinear", align_corners=False)
        return out


class MinibatchStdDev(nn.Module):
    """Append the mean over features of the per-group std over samples as extra channels.

    Groups of ``group_size`` samples (the largest divisor of the batch not above it), so any batch
    size works; a batch of one gets zeros.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = max(d for d in range(1, min(self.group_size, n) + 1) if n % d == 0)
        f = self.num_channels
        y = x.reshape(g, n // g, f, c // f, h, w).float()
        y = (y - y.mean(dim=0)).pow(2).mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))  # [n/g, f]
        y = y.reshape(n // g, f, 1, 1).repeat(g, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)


__all__ = [
    "EqualConv2d",
    "EqualLinear",
    "MinibatchStdDev",
    "ModulatedConv2d",
    "NoiseInjection",
    "PixelNorm",
    "StyledConv",
    "ToRGB",
    "lrelu_gain",
]
