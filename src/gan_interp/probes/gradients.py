"""Input-gradient helpers (saliency, activation maximisation): frozen parameters, the critic as a function."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from torch import Tensor, nn


@contextlib.contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[None]:
    """Temporarily set ``requires_grad=False`` on every parameter (no parameter ``.grad`` is touched)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def critic_fn(model) -> Callable[[Tensor], Tensor]:
    """``x -> [n]`` scores (``model.critic``)."""
    return lambda x: model.critic(x).reshape(x.shape[0], -1).sum(1)
