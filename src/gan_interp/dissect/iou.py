"""Unit-concept IoU and the information-quality-ratio (IQR) threshold, streamed over samples.

Bau et al. (2019) measure how well unit ``u`` of a generator layer segments concept ``c``:

    IoU_{u,c} = E_z |(r_u^up > t) AND s_c(x)| / E_z |(r_u^up > t) OR s_c(x)|

where ``r_u^up`` is the unit's feature map upsampled to the image and ``s_c`` the concept mask of
a segmenter. ``t`` is either the unit's top-``q`` quantile (default 1 %) or the threshold that
maximises the information quality ratio ``I(X_t; Y) / H(X_t, Y)`` of the two binary masks
``X_t = r_u^up > t`` and ``Y = s_c``.

The ratio is symmetric under complementing either mask: a unit that is *off* on a concept scores as
high as one that is on there. The search therefore counts only **qualified** thresholds, where the unit
and the concept are positively associated (``|X & Y| > |X| |Y| / n``), as the authors' code does
(netdissect ``collect_iqr`` maximises "only over pairs where the unit is positively correlated with the
label"). A (unit, concept) pair with no qualified threshold gets ratio 0 and IoU 0. (A unit whose best
ratio is at chance level still has a high IoU at a permissive threshold with a large concept: the
readout gates on the ratio, see :meth:`~gan_interp.dissect.dissection.DissectionResult.best`.)

:class:`ConceptTally` keeps, for ``T`` thresholds per unit, exact integer counts of pixels above
each threshold, inside each concept, and in both; every IoU and IQR is a function of these four
numbers, so the streamed result equals the all-at-once result exactly (integer sums).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def upsample_maps(acts: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bilinear upsampling of feature maps ``[B, U, h, w]`` to the image size (no-op if equal)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(acts.shape[-2:]) == size:
        return acts
    return F.interpolate(acts.float(), size=size, mode="bilinear", align_corners=False)


def binary_iou(unit_masks: Tensor, concept_masks: Tensor) -> Tensor:
    """Dense reference: IoU ``[U, K]`` of bool masks ``[B, U, H, W]`` vs ``[B, K, H, W]`` (all in memory)."""
    a = unit_masks.flatten(2).transpose(0, 1).reshape(unit_masks.shape[1], -1).double()  # [U, N]
    b = concept_masks.flatten(2).transpose(0, 1).reshape(concept_masks.shape[1], -1).double()  # [K, N]
    inter = a @ b.T
    union = a.sum(1, keepdim=True) + b.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


def _h(*probs: Tensor) -> Tensor:
    """Entropy (nats) of a discrete distribution given as separate probability tensors."""
    return sum(torch.special.entr(p) for p in probs)


def iqr_from_counts(inter: Tensor, above: Tensor, area: Tensor, n: float) -> Tensor:
    """Information quality ratio ``I(X;Y) / H(X,Y)`` of binary ``X`` (unit) and ``Y`` (concept).

    ``inter`` = #(X & Y), ``above`` = #X, ``area`` = #Y, ``n`` = #pixels; broadcastable tensors.
    Returns 0 where the joint entropy is 0 (both masks constant).
    """
    inter, above, area = inter.double(), above.double(), area.double()
    p11 = inter / n
    p10 = (above - inter) / n
    p01 = (area - inter) / n
    p00 = 1.0 - p11 - p10 - p01
    h_xy = _h(p11, p10, p01, p00.clamp_min(0))
    px, py = above / n, area / n
    h_x, h_y = _h(px, 1 - px), _h(py, 1 - py)
    mi = (h_x + h_y - h_xy).clamp_min(0)
    return torch.where(h_xy > 1e-12, mi / h_xy.clamp_min(1e-12), torch.zeros_like(h_xy))


class ConceptTally:
    """Streaming counts for IoU/IQR of every (unit, threshold, concept) triple.

    ``thresholds`` is ``[U, T]`` (or ``[U]`` for ``T = 1``); a pixel is "on" for threshold ``t``
    when the unit's upsampled activation is ``> t`` (strict, so ReLU zeros are never "on").
    Also accumulates each unit's activation summed over each concept's pixels (for the "insert"
    intervention: the concept's mean activation).
    """

    def __init__(
        self,
        thresholds: Tensor,  # [U, T] or [U]: thresholds per unit (any order)
        n_concepts: int,  # K: number of concept masks per image
        max_elements: int = 2**23,  # update() works in sub-batches of at most this many unit-pixels
    ) -> None:
        thr = thresholds.detach().float().cpu()
        thr = thr[:, None] if thr.ndim == 1 else thr
        self.sorted_thr, self.order = thr.sort(dim=1)  # searchsorted needs ascending rows
        self.n_units, self.n_thresholds = thr.shape
        self.n_concepts = int(n_concepts)
        self.max_elements = int(max_elements)
        t1 = self.n_thresholds + 1
        self.hist = torch.zeros(self.n_units * t1, dtype=torch.int64)  # [U*(T+1)] bins of all pixels
        self.hist_c = torch.zeros(self.n_concepts, self.n_units * t1, dtype=torch.int64)  # per concept
        self.area = torch.zeros(self.n_concepts, dtype=torch.int64)  # pixels of each concept
        self.act_in_concept = torch.zeros(self.n_units, self.n_concepts, dtype=torch.float64)
        self.n_pixels = 0

    @torch.no_grad()
    def update(self, acts: Tensor, masks: Tensor) -> None:
        """Add a batch: upsampled activations ``[B, U, H, W]`` and bool concept masks ``[B, K, H, W]``."""
        b, u, h, w = acts.shape
        if u != self.n_units or masks.shape != (b, self.n_concepts, h, w):
            raise ValueError(
                f"acts {tuple(acts.shape)} and masks {tuple(masks.shape)} do not match "
                f"{self.n_units} units x {self.n_concepts} concepts at the same B, H, W"
            )
        step = max(1, self.max_elements // (u * h * w))  # bounded temporary memory
        for lo in range(0, b, step):
            self._update(acts[lo : lo + step], masks[lo : lo + step])

    def _update(self, acts: Tensor, masks: Tensor) -> None:
        u = acts.shape[1]
        a = acts.detach().float().cpu().transpose(0, 1).reshape(u, -1)  # [U, N]
        m = masks.detach().cpu().bool().transpose(0, 1).reshape(self.n_concepts, -1)  # [K, N]
        t1 = self.n_thresholds + 1
        # bin i = number of thresholds strictly below the value = "on" for thresholds 0..i-1
        bins = torch.searchsorted(self.sorted_thr.contiguous(), a.contiguous(), right=False)
        bins += torch.arange(u)[:, None] * t1
        size = u * t1
        self.hist += torch.bincount(bins.reshape(-1), minlength=size)
        for k in range(self.n_concepts):
            if m[k].any():
                self.hist_c[k] += torch.bincount(bins[:, m[k]].reshape(-1), minlength=size)
        self.area += m.sum(dim=1)
        self.act_in_concept += a.double() @ m.double().T
        self.n_pixels += a.shape[1]

    # -- derived quantities (thresholds back in the caller's order) ---------------------------------
    def _above(self, hist: Tensor) -> Tensor:
        """[..., U*(T+1)] bin counts -> [..., U, T] counts strictly above each sorted threshold."""
        t1 = self.n_thresholds + 1
        h = hist.reshape(*hist.shape[:-1], self.n_units, t1)
        suffix = h.flip(-1).cumsum(-1).flip(-1)  # suffix[..., i] = sum of bins >= i
        return suffix[..., 1:]

    def _unsort(self, x: Tensor) -> Tensor:
        """Undo the per-unit threshold sort along the T axis (dim -1 of a [..., U, T] tensor)."""
        out = torch.empty_like(x)
        out.scatter_(-1, self.order.expand_as(x), x)
        return out

    def counts(self) -> tuple[Tensor, Tensor, Tensor, int]:
        """``inter [U, T, K]``, ``above [U, T]``, ``area [K]``, ``n_pixels``."""
        above = self._unsort(self._above(self.hist))
        inter = self._unsort(self._above(self.hist_c)).permute(1, 2, 0)  # [K, U, T] -> [U, T, K]
        return inter, above, self.area.clone(), self.n_pixels

    def iou(self) -> Tensor:
        """IoU ``[U, T, K]`` of (unit > threshold) vs concept over everything seen."""
        inter, above, area, _ = self.counts()
        inter = inter.double()
        union = above.double()[..., None] + area.double() - inter
        return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))

    def iqr(self) -> Tensor:
        """Information quality ratio ``[U, T, K]`` for every threshold and concept."""
        inter, above, area, n = self.counts()
        return iqr_from_counts(inter, above[..., None], area, float(max(n, 1)))

    def concept_mean_activation(self) -> Tensor:
        """Mean upsampled activation of each unit over each concept's pixels ``[U, K]``."""
        return (self.act_in_concept / self.area.double().clamp_min(1)).float()

    def qualified(self) -> Tensor:
        """Bool ``[U, T, K]``: thresholds the IQR search may pick: unit and concept positively associated."""
        inter, above, area, n = self.counts()
        return inter.double() * float(max(n, 1)) > above.double()[..., None] * area.double()

    def best_iqr(self) -> dict[str, Tensor]:
        """Per (unit, concept): the qualified threshold maximising IQR, its IQR and the IoU there (``[U, K]``).

        Pairs with no qualified threshold get IQR 0 and IoU 0 (their threshold is the first one's).
        """
        ok = self.qualified()
        iqr = torch.where(ok, self.iqr(), torch.zeros((), dtype=torch.float64))
        iou = torch.where(ok, self.iou(), torch.zeros((), dtype=torch.float64))
        best = iqr.argmax(dim=1)  # [U, K]
        thr = self._unsort(self.sorted_thr)  # [U, T] original order
        return {
            "threshold_index": best,
            "threshold": thr.gather(1, best),
            "iqr": iqr.gather(1, best[:, None, :]).squeeze(1).float(),
            "iou": iou.gather(1, best[:, None, :]).squeeze(1).float(),
        }
