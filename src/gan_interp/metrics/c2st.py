"""Classifier two-sample test (C2ST; Lopez-Paz & Oquab 2017).

A small classifier learns real (label 1) vs fake (label 0) on half of the pooled samples; its
accuracy on the other half is the statistic. Under the null (same distribution) the held-out
accuracy is approximately ``N(1/2, 1/(4 n_test))``, so the one-sided p-value is
``P(N(1/2, 1/(4 n_test)) >= acc)``. Accuracy near 0.5 means the classifier cannot tell fakes
from reals; near 1 means it always can.

The larger sample is subsampled to the size of the smaller one (seeded), so both classes are
balanced and chance level is exactly 1/2. Inputs are either vectors ``[n, d]`` (features, flattened
pixels; an MLP or logistic regression) or images ``[n, C, H, W]`` (a small conv net).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from scipy.stats import norm
from torch import Tensor, nn

CLASSIFIERS = ("auto", "logistic", "mlp", "conv")


@dataclass
class C2STResult:
    """Outcome of :func:`c2st`."""

    accuracy: float  # held-out accuracy of the real-vs-fake classifier
    p_value: float  # one-sided p-value under N(1/2, 1/(4 n_test))
    n_train: int
    n_test: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def c2st_p_value(accuracy: float, n_test: int) -> float:
    """``P(acc' >= accuracy)`` for ``acc' ~ N(1/2, 1/(4 n_test))``."""
    return float(norm.sf((accuracy - 0.5) * 2.0 * n_test**0.5))


def _conv_net(channels: int, width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 3, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 2 * width, 3, 2, 1),
        nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, 1),
    )


def make_classifier(kind: str, sample_shape: tuple[int, ...], hidden: int = 64) -> nn.Module:
    """The C2ST classifier for inputs of ``sample_shape`` (one sample, no batch dim)."""
    if kind == "auto":
        kind = "conv" if len(sample_shape) == 3 else "mlp"
    if kind == "conv":
        if len(sample_shape) != 3:
            raise ValueError(f"c2st classifier 'conv' needs images [C,H,W], got samples of shape {sample_shape}")
        return _conv_net(sample_shape[0], max(8, hidden // 4))
    d = 1
    for s in sample_shape:
        d *= int(s)
    if kind == "logistic":
        return nn.Sequential(nn.Flatten(), nn.Linear(d, 1))
    if kind == "mlp":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )
    raise ValueError(f"c2st classifier={kind!r} must be one of {', '.join(CLASSIFIERS)}")


def _as_float(x: Tensor) -> Tensor:
    """uint8 images -> float [-1, 1]; float passes through."""
    return x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.float()


def c2st(
    real: Tensor,  # [n, d] vectors or [n, C, H, W] images (float, or uint8 images in [0, 255])
    fake: Tensor,  # same shape as real (except n)
    classifier: str = "auto",  # auto (conv for images, mlp for vectors) | logistic | mlp | conv
    epochs: int = 20,  # passes over the training half ...
    min_steps: int = 200,  # ... but at least this many optimizer steps (small samples)
    batch_size: int = 128,
    lr: float = 1e-3,  # Adam learning rate
    weight_decay: float = 1e-4,
    hidden: int = 64,  # MLP width (conv width = hidden / 4)
    test_fraction: float = 0.5,  # share of each sample held out for the accuracy
    seed: int = 0,  # split, init and batch order
    device: torch.device | str | None = None,
) -> C2STResult:
    """Train a real-vs-fake classifier on a seeded split; report held-out accuracy and p-value."""
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            f"c2st: real samples {tuple(real.shape[1:])} and fake samples {tuple(fake.shape[1:])} differ in shape"
        )
    device = torch.device(device) if device is not None else real.device
    g = torch.Generator().manual_seed(seed)
    n = min(len(real), len(fake))  # balanced classes: chance level is exactly 1/2
    if len(real) > n:
        real = real[torch.randperm(len(real), generator=g)[:n]]
    if len(fake) > n:
        fake = fake[torch.randperm(len(fake), generator=g)[:n]]

    def split(x: Tensor) -> tuple[Tensor, Tensor]:
        perm = torch.randperm(x.shape[0], generator=g)
        n_test = max(1, int(round(x.shape[0] * test_fraction)))
        return x[perm[n_test:]], x[perm[:n_test]]

    real_tr, real_te = split(real)
    fake_tr, fake_te = split(fake)
    x_tr = torch.cat([real_tr, fake_tr])
    y_tr = torch.cat([torch.ones(len(real_tr)), torch.zeros(len(fake_tr))])
    x_te = torch.cat([real_te, fake_te])
    y_te = torch.cat([torch.ones(len(real_te)), torch.zeros(len(fake_te))])

    vectors = x_tr.dim() == 2
    if vectors:  # standardise features with training statistics
        mu = _as_float(x_tr).mean(0, keepdim=True)
        sd = _as_float(x_tr).std(0, keepdim=True).clamp_min(1e-6)
    else:
        mu, sd = torch.zeros(()), torch.ones(())

    def prep(x: Tensor) -> Tensor:
        return ((_as_float(x) - mu) / sd).to(device)

    with torch.inference_mode(False), torch.enable_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = make_classifier(classifier, tuple(x_tr.shape[1:]), hidden).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        loss_fn = nn.BCEWithLogitsLoss()
        net.train()
        per_epoch = -(-len(x_tr) // batch_size)
        for _ in range(max(1, int(epochs), -(-int(min_steps) // per_epoch))):
            order = torch.randperm(len(x_tr), generator=g)
            for b0 in range(0, len(order), batch_size):
                idx = order[b0 : b0 + batch_size]
                loss = loss_fn(net(prep(x_tr[idx])).flatten(), y_tr[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        net.eval()
        correct = 0
        with torch.no_grad():
            for b0 in range(0, len(x_te), 4 * batch_size):
                pred = net(prep(x_te[b0 : b0 + 4 * batch_size])).flatten() > 0
                correct += int((pred.cpu() == y_te[b0 : b0 + 4 * batch_size].bool()).sum())
    n_test = len(x_te)
    acc = correct / n_test
    return C2STResult(acc, c2st_p_value(acc, n_test), len(x_tr), n_test)
