"""Interpretable-GAN regulariser (Li et al., AAAI 2022): concept groups of generator filters.

The ``M`` filters of one generator layer are partitioned into ``C`` concept groups ``Q`` by an
isotropic Gaussian mixture fitted with EM to their feature maps (filter ``j`` is one point: its
maps over a batch of ``N`` latents, ``f^j`` with ``K = h*w`` positions per sample). Given ``Q``:

* energy-based realism term with ``g_W(f) = sum_j sum_c W_jc . (f^j (.) fbar^c)`` where ``fbar^c``
  is the mean map of group ``c``:  ``L_real = -1/N sum_i log P_W(f(z_i)) = -mean_i g_W(f(z_i)) + log Z(W)``;
* interpretability term ``L_interpret = sum_jck -1(q_j = c) W_jck + lambda_other 1(q_j != c) W_jck``;
* total regulariser ``lambda_real L_real + lambda_interpret L_interpret`` added to the generator loss.

Choices the review leaves open (documented here, not in the paper summary):

* maps are L2-normalised per sample and filter before both the GMM and the energy, so the
  groups and ``g_W`` describe *where* a filter fires, not how strongly (scale-free);
* ``log Z(W)`` is estimated by ``log mean_i exp g_W(sg[f(z_i)])`` over the same batch with the
  generator gradient stopped (Monte-Carlo samples of the current generator ``G'``);
* ``W = w_max * tanh(V)`` keeps ``W`` bounded, otherwise the linear ``L_interpret`` has no minimum;
* ``g_W`` is divided by ``M`` and ``L_interpret`` by ``M*K`` so the lambdas do not depend on the
  layer size;
* the groups are refitted every ``regroup_every`` generator steps and matched to the previous
  labels (Hungarian assignment on the overlap) so ``W``'s rows keep their meaning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from gan_interp.errors import ConfigError
from gan_interp.kmeans import kmeans_pp


def normalise_maps(feats: Tensor, eps: float = 1e-8) -> Tensor:
    """``[N, M, h, w]`` -> ``[N, M, K]`` with every (sample, filter) map scaled to unit L2 norm."""
    f = feats.flatten(2)
    return f / f.norm(dim=2, keepdim=True).clamp_min(eps)


# -- Gaussian mixture over filters -----------------------------------------------------------------
def fit_isotropic_gmm(
    x: Tensor,  # [M, D] points (one per filter)
    n_components: int,  # C
    n_iter: int = 100,  # maximum EM iterations
    tol: float = 1e-6,  # stop when the mean log-likelihood improves less than this
    seed: int = 0,  # k-means++ initialisation
    min_var: float = 1e-6,  # variance floor
) -> dict[str, Tensor]:
    """EM for ``x_j ~ sum_c p_c N(mu_c, sigma_c^2 I)``; returns labels, resp, means, variances, weights."""
    m, d = x.shape
    if not 1 <= n_components <= m:
        raise ConfigError(f"n_concepts={n_components} must be between 1 and the number of filters ({m})")
    x = x.double()
    gen = torch.Generator().manual_seed(seed)
    mu = x[kmeans_pp(x, n_components, gen)].clone()
    var = torch.full((n_components,), max(float(x.var(0).mean()), min_var), dtype=torch.float64)
    logw = torch.full((n_components,), -math.log(n_components), dtype=torch.float64)
    prev = -math.inf
    for _ in range(n_iter):
        d2 = torch.cdist(x, mu) ** 2  # [M, C]
        logp = logw - 0.5 * d * torch.log(2 * math.pi * var) - d2 / (2 * var)
        ll = torch.logsumexp(logp, 1)
        resp = (logp - ll[:, None]).exp()
        nk = resp.sum(0)
        empty = nk < 1e-6
        if empty.any():  # re-seed empty components at the worst-explained points
            worst = ll.argsort()[: int(empty.sum())]
            resp[:, empty] = 0
            resp[worst] = 0
            resp[worst, torch.nonzero(empty)[:, 0]] = 1.0
            nk = resp.sum(0)
        mu = (resp.T @ x) / nk[:, None]
        var = ((resp * (torch.cdist(x, mu) ** 2)).sum(0) / (d * nk)).clamp_min(min_var)
        logw = torch.log(nk / m)
        cur = float(ll.mean())
        if abs(cur - prev) < tol * max(1.0, abs(cur)):
            break
        prev = cur
    return {
        "labels": resp.argmax(1),
        "resp": resp.float(),
        "means": mu.float(),
        "variances": var.float(),
        "weights": logw.exp().float(),
        "log_likelihood": torch.tensor(prev),
    }


def group_filters(feats: Tensor, n_concepts: int, seed: int = 0, n_iter: int = 100) -> Tensor:
    """Concept group ``q_j`` of every filter of a layer from its maps ``[N, M, h, w]`` (GMM/EM)."""
    f = normalise_maps(feats.detach().float())  # [N, M, K]
    points = f.transpose(0, 1).reshape(f.shape[1], -1)  # filter j = its maps over all samples
    return fit_isotropic_gmm(points, n_concepts, n_iter=n_iter, seed=seed)["labels"]


def align_labels(new: Tensor, old: Tensor, n_concepts: int) -> Tensor:
    """Relabel ``new`` groups to agree with ``old`` as much as possible (Hungarian on the overlap)."""
    if (old < 0).any():
        return new
    overlap = torch.zeros(n_concepts, n_concepts)
    overlap.index_put_((new, old), torch.ones(len(new)), accumulate=True)
    rows, cols = linear_sum_assignment(-overlap.numpy())
    mapping = torch.empty(n_concepts, dtype=torch.long)
    mapping[torch.as_tensor(rows)] = torch.as_tensor(cols)
    return mapping[new]


# -- the regulariser -------------------------------------------------------------------------------
class InterpretableRegularizer(nn.Module):
    """Energy-based realism + interpretability terms on one generator layer (see module docstring)."""

    def __init__(
        self,
        n_filters: int,  # M: channels of the layer
        n_positions: int,  # K: h*w of the layer's maps
        n_concepts: int = 5,  # C: concept groups
        lambda_real: float = 1.0,  # weight of L_real in the generator loss
        lambda_interpret: float = 1.0,  # weight of L_interpret
        lambda_other: float = 1.0,  # the review's lambda_1: penalty on W toward other groups
        w_max: float = 1.0,  # W = w_max * tanh(V)
        lr: float = 1e-2,  # learning rate of W (its own param group in the G optimizer)
        regroup_every: int = 100,  # refit the GMM groups every this many generator steps
        em_iters: int = 100,
        seed: int = 0,
        layer: str = "",  # name of the hooked generator layer (informational)
    ) -> None:
        super().__init__()
        if n_concepts < 1 or n_concepts > n_filters:
            raise ConfigError(
                f"model.interpretable.n_concepts={n_concepts} must be in [1, {n_filters}] (filters of "
                f"{layer or 'the layer'})"
            )
        for key, val in (
            ("lambda_real", lambda_real),
            ("lambda_interpret", lambda_interpret),
            ("lambda_other", lambda_other),
        ):
            if val < 0:
                raise ConfigError(f"model.interpretable.{key}={val} must be >= 0")
        if regroup_every < 1 or w_max <= 0 or lr <= 0:
            raise ConfigError("model.interpretable.regroup_every must be >= 1 and w_max, lr > 0")
        self.n_filters, self.n_positions, self.n_concepts = int(n_filters), int(n_positions), int(n_concepts)
        self.lambda_real, self.lambda_interpret, self.lambda_other = (
            float(lambda_real),
            float(lambda_interpret),
            float(lambda_other),
        )
        self.w_max, self.lr, self.regroup_every, self.em_iters = (
            float(w_max),
            float(lr),
            int(regroup_every),
            int(em_iters),
        )
        self.seed, self.layer = int(seed), layer
        self.V = nn.Parameter(torch.zeros(self.n_filters, self.n_concepts, self.n_positions))
        self.register_buffer("groups", torch.full((self.n_filters,), -1, dtype=torch.long))
        self.register_buffer("last_regroup", torch.tensor(-1, dtype=torch.long))
        self._last: Tensor | None = None  # the hooked layer's latest output with grad (set by the hook)

    @property
    def W(self) -> Tensor:  # noqa: N802 - the paper's name
        return self.w_max * torch.tanh(self.V)

    # -- pieces --------------------------------------------------------------------------------------
    def assignment(self) -> Tensor:
        """One-hot ``[M, C]`` of the current groups (zeros before the first fit)."""
        q = self.groups.clamp_min(0)
        onehot = F.one_hot(q, self.n_concepts).float()
        return onehot * (self.groups >= 0).float()[:, None]

    def centres(self, f: Tensor) -> Tensor:
        """Group centre maps ``fbar^c`` ``[N, C, K]`` from normalised maps ``[N, M, K]``."""
        a = self.assignment().to(f)
        return torch.einsum("nmk,mc->nck", f, a) / a.sum(0).clamp_min(1)[None, :, None]

    def energy(self, feats: Tensor) -> Tensor:
        """``g_W(f) = sum_jc W_jc . (f^j (.) fbar^c) / M`` per sample ``[N]`` (maps ``[N, M, h, w]``)."""
        f = normalise_maps(feats.float())
        return torch.einsum("nmk,mck,nck->n", f, self.W, self.centres(f)) / self.n_filters

    def real_loss(self, feats: Tensor) -> Tensor:
        """``-mean g_W(f) + log mean exp g_W(sg f)`` (the batch estimates ``log Z``)."""
        g = self.energy(feats)
        g_ref = self.energy(feats.detach())
        return -g.mean() + torch.logsumexp(g_ref, 0) - math.log(g_ref.shape[0])

    def interpret_loss(self) -> Tensor:
        """``sum_jck [-1(q_j=c) + lambda_other 1(q_j!=c)] W_jck / (M K)`` (0 before the groups exist)."""
        a = self.assignment().to(self.V)
        known = (self.groups >= 0).float().to(self.V)[:, None]
        coef = (-a + self.lambda_other * (1 - a)) * known  # [M, C]
        return (coef[:, :, None] * self.W).sum() / (self.n_filters * self.n_positions)

    @torch.no_grad()
    def regroup(self, feats: Tensor, step: int = 0) -> Tensor:
        """Refit the GMM groups on a batch of maps and keep the labels aligned with the previous fit."""
        new = group_filters(feats, self.n_concepts, seed=self.seed + max(step, 0), n_iter=self.em_iters).to(
            self.groups.device
        )
        self.groups.copy_(align_labels(new.cpu(), self.groups.cpu(), self.n_concepts).to(self.groups.device))
        self.last_regroup.fill_(step)
        return self.groups

    def forward(self, feats: Tensor, step: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        """Regulariser on layer maps ``[N, M, h, w]`` (with grad); refits groups when due."""
        if self.groups[0] < 0 or step - int(self.last_regroup) >= self.regroup_every:
            self.regroup(feats, step)
        l_real, l_int = self.real_loss(feats), self.interpret_loss()
        loss = self.lambda_real * l_real + self.lambda_interpret * l_int
        parts = {"real": l_real.detach(), "interpret": l_int.detach(), **self.group_similarity(feats)}
        return loss, parts

    @torch.no_grad()
    def group_similarity(self, feats: Tensor) -> dict[str, Tensor]:
        """Mean cosine of each filter's map with its own group centre and with the other centres."""
        f = normalise_maps(feats.detach().float())
        cen = self.centres(f)
        cos = torch.einsum("nmk,nck->nmc", f, cen / cen.norm(dim=2, keepdim=True).clamp_min(1e-8))
        a = self.assignment().to(cos)
        own = (cos * a).sum(2).mean()
        other = (cos * (1 - a)).sum(2).mean() / max(self.n_concepts - 1, 1)
        return {"own_group_cos": own, "other_group_cos": other}

    def loss_from_last_forward(self, step: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        """The regulariser on the maps captured by the hook during the last generator forward with grad."""
        if self._last is None:
            zero = self.V.sum() * 0.0
            return zero, {}
        feats, self._last = self._last, None
        return self(feats, step)

    def capture(self, _module: nn.Module, _inp: Any, out: Any) -> None:
        """Forward hook: keep the layer output of training forwards (those that carry gradients)."""
        out = out[0] if isinstance(out, (tuple, list)) else out
        if out.requires_grad:
            self._last = out


INTERPRETABLE_KEYS = (
    "layer",
    "n_concepts",
    "lambda_real",
    "lambda_interpret",
    "lambda_other",
    "w_max",
    "lr",
    "regroup_every",
    "em_iters",
    "seed",
)


def attach_interpretable(model: Any, cfg: Mapping[str, Any] | None) -> InterpretableRegularizer | None:
    """Build the regulariser for ``model`` from ``model.interpretable`` config and hook its layer.

    Returns ``None`` unless ``cfg.enabled``. ``cfg.layer`` names a ``generator_layers()`` entry
    (null/"auto": the same middle layer the dissection probe picks).
    """
    if cfg is None:
        return None
    if hasattr(cfg, "_metadata"):  # DictConfig -> plain dict
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    cfg = dict(cfg)
    if not cfg.pop("enabled", False):
        return None
    unknown = set(cfg) - set(INTERPRETABLE_KEYS)
    if unknown:
        raise ConfigError(
            f"model.interpretable has unknown keys {sorted(unknown)}; known: {', '.join(INTERPRETABLE_KEYS)}"
        )
    from gan_interp.dissect.dissection import get_layer, layer_shapes, resolve_layer

    name = resolve_layer(model, cfg.pop("layer", None))
    shape = layer_shapes(model)[name]
    if len(shape) != 3:
        raise ConfigError(
            f"model.interpretable.layer={name!r} has output shape {shape}; it needs feature maps [C, h, w]"
        )
    reg = InterpretableRegularizer(shape[0], shape[1] * shape[2], layer=name, **cfg)
    get_layer(model, name).register_forward_hook(reg.capture)
    return reg
