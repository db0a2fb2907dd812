"""Feature extractors for FID / KID / IS, MMD, C2ST and the memorisation score.

Which features are used (``features=`` in the metrics config):

* ``auto`` - Inception-v3 if its weights are *already* on disk (never downloaded), otherwise the
  domain net below; the choice and the reason are logged and stored with the metrics;
* ``inception`` - Inception-v3 from a cached weights file, or a one-line error saying where we
  looked. Two files are recognised in the torch hub cache (``torch.hub.get_dir()/checkpoints``):
  torch-fidelity's FID Inception ``weights-inception-2015-12-05-6726825d.pth`` (used through
  torchmetrics' ``NoTrainInceptionV3`` when ``torch-fidelity`` is installed; the standard FID
  features) and torchvision's ``inception_v3_google-0cc3c7bd.pth`` (ImageNet Inception-v3 pool
  features; close to, but not identical with, the TF FID network). ``GAN_INTERP_INCEPTION_WEIGHTS``
  or ``inception_weights=`` point at a file explicitly;
* ``domain`` - a small conv autoencoder trained briefly on the real training images (cached in
  ``<cache_dir>/feature_nets/``); features are its code, IS "classes" are k-means clusters of the
  real codes. Numbers are comparable between runs on the same data, not with published FIDs;
* ``pixels`` - average-pooled pixels (``pixel_size`` x ``pixel_size`` x C), no learning at all.

Every extractor maps images in ``[-1, 1]`` to ``(features [n, d], logits [n, k] | None)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_interp.errors import ConfigError
from gan_interp.io import torch_save
from gan_interp.kmeans import kmeans
from gan_interp.progress import track

log = logging.getLogger(__name__)

FEATURE_KINDS = ("auto", "inception", "domain", "pixels")
FIDELITY_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
TORCHVISION_WEIGHTS = "inception_v3_google-0cc3c7bd.pth"
DOMAIN_NET_VERSION = 1


@dataclass
class FeatureExtractor:
    """A named image -> (features, logits) map and a sentence saying what it is."""

    name: str  # 'inception-fidelity' | 'inception-torchvision' | 'domain-autoencoder' | 'pixels'
    description: str  # human-readable: which features, and why these
    extract: Callable[[Tensor], tuple[Tensor, Tensor | None]]  # images [-1,1] -> (feats, logits)
    num_features: int
    module: nn.Module | None = None  # the network (moved with .to())

    def to(self, device: torch.device | str) -> FeatureExtractor:
        if self.module is not None:
            self.module.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        feats, logits = self.extract(images)
        return feats.float(), None if logits is None else logits.float()


# -- pixels -----------------------------------------------------------------------------------------
class PixelFeatures(nn.Module):
    """Images -> average-pooled pixels flattened to ``[n, C * size * size]``."""

    def __init__(
        self,
        channels: int,  # image channels
        size: int = 16,  # pooled side length
    ) -> None:
        super().__init__()
        self.size = int(size)
        self.num_features = int(channels) * self.size * self.size

    def forward(self, x: Tensor) -> Tensor:
        x = x.float()
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = (
                F.adaptive_avg_pool2d(x, self.size)
                if x.shape[-1] >= self.size
                else F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
            )
        return x.flatten(1)


def pixel_extractor(channels: int, size: int = 16) -> FeatureExtractor:
    net = PixelFeatures(channels, size)
    return FeatureExtractor(
        "pixels",
        f"pixel features ({size}x{size}x{channels} average-pooled pixels)",
        lambda x: (net(x), None),
        net.num_features,
        net,
    )


# -- domain autoencoder -------------------------------------------------------------------------------
class DomainFeatureNet(nn.Module):
    """Tiny conv autoencoder on ``input_size`` px images; code = features, k-means clusters = classes."""

    def __init__(
        self,
        channels: int,  # image channels
        dim: int = 64,  # code (feature) size
        input_size: int = 32,  # images are resized to this side first
        width: int = 16,  # first conv width (doubles twice)
        n_clusters: int = 10,  # pseudo-classes for the Inception Score
    ) -> None:
        super().__init__()
        if input_size < 8 or input_size % 8:
            raise ConfigError(f"metrics.domain.input_size={input_size} must be a multiple of 8 (e.g. 32)")
        self.channels, self.dim, self.input_size, self.num_features = channels, dim, input_size, dim
        w = width
        side = input_size // 8
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(4 * w * side * side, dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(dim, 4 * w * side * side),
            nn.Unflatten(1, (4 * w, side, side)),
            nn.ReLU(),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(w, channels, 4, 2, 1),
            nn.Tanh(),
        )
        self.register_buffer("centroids", torch.zeros(n_clusters, dim))
        self.register_buffer("scale", torch.ones(()))  # mean within-cluster squared distance

    def resize(self, x: Tensor) -> Tensor:
        x = x.float()
        if x.shape[-1] == self.input_size and x.shape[-2] == self.input_size:
            return x
        return F.interpolate(
            x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=True
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(self.resize(x))

    def logits(self, code: Tensor) -> Tensor:
        """Cluster logits ``-|code - c_k|^2 / scale`` (softmax = soft cluster assignment)."""
        return -torch.cdist(code, self.centroids).pow(2) / self.scale


def train_domain_net(
    sample_batch: Callable[[int, torch.Generator], Tensor],  # (batch_size, generator) -> images [-1,1]
    channels: int,
    steps: int = 400,  # Adam steps
    batch_size: int = 64,
    lr: float = 2e-3,
    dim: int = 64,
    input_size: int = 32,
    n_clusters: int = 10,
    n_cluster_images: int = 2048,  # real images embedded for the k-means pseudo-classes
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> DomainFeatureNet:
    """Fit the autoencoder (MSE) on real images, then k-means its codes for IS pseudo-classes."""
    g = torch.Generator().manual_seed(seed)
    with torch.inference_mode(False), torch.enable_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DomainFeatureNet(channels, dim, input_size, n_clusters=n_clusters).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
        net.train()
        for _ in track(range(max(1, steps)), "domain feature net training", unit="steps"):
            x = net.resize(sample_batch(batch_size, g).to(device))
            loss = F.mse_loss(net.decoder(net.encoder(x)), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        final_mse = float(loss.detach())
        net.eval()
        with torch.no_grad():
            codes = torch.cat(
                [
                    net(sample_batch(min(256, n_cluster_images), g).to(device)).cpu()
                    for _ in range(max(1, n_cluster_images // 256))
                ]
            )
            cent = kmeans(codes, n_clusters, seed=seed)
            d2 = torch.cdist(codes, cent).pow(2).min(1).values
            net.centroids.copy_(cent)
            net.scale.fill_(float(d2.mean().clamp_min(1e-8)))
    log.info("domain feature net trained: %d steps, final reconstruction MSE %.4f", steps, final_mse)
    return net


def _domain_cache_path(cache_dir: Path, key_material: dict[str, Any]) -> Path:
    digest = hashlib.sha1(json.dumps(key_material, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return cache_dir / "feature_nets" / f"domain-v{DOMAIN_NET_VERSION}-{digest}.pt"


def load_or_train_domain_net(
    datamodule: Any,  # GANDataModule (its train split is the training data)
    cache_dir: str | Path | None,  # where trained nets are kept (None -> no cache)
    steps: int = 400,
    dim: int = 64,
    input_size: int = 32,
    n_clusters: int = 10,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[DomainFeatureNet, str]:
    """The domain net for this data (loaded from the cache if trained before) and where it is."""
    datamodule.setup()
    ds = datamodule.dataset("train")
    entry = getattr(getattr(datamodule, "data", None), "path", None)
    split_hash = hashlib.sha1(json.dumps(list(map(int, ds.indices))).encode()).hexdigest()[:12]
    material = {
        "data": str(Path(entry).name) if entry else datamodule.name,
        "split": split_hash,
        "channels": datamodule.channels,
        "steps": steps,
        "dim": dim,
        "input_size": input_size,
        "k": n_clusters,
        "seed": seed,
    }
    path = _domain_cache_path(Path(cache_dir), material) if cache_dir else None
    if path is not None and path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            net = DomainFeatureNet(datamodule.channels, dim, input_size, n_clusters=n_clusters)
            net.load_state_dict(blob["state_dict"])
            return net.to(device).eval(), str(path)
        except Exception as exc:  # a corrupt cache file is rebuilt, not fatal
            log.warning("ignoring unreadable domain feature net %s: %s", path, exc)

    def sample_batch(b: int, g: torch.Generator) -> Tensor:
        idx = torch.randint(len(ds), (b,), generator=g).tolist()
        return ds.__getitems__(idx)["image"]

    net = train_domain_net(
        sample_batch,
        datamodule.channels,
        steps=steps,
        dim=dim,
        input_size=input_size,
        n_clusters=n_clusters,
        seed=seed,
        device=device,
    )
    if path is None:
        return net, "(not cached)"
    # atomic: parallel sweep jobs never read a half-written file
    torch_save({"state_dict": {k: v.cpu() for k, v in net.state_dict().items()}, "meta": material}, path)
    return net, str(path)


# -- Inception ------------------------------------------------------------------------------------------
def _hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _fidelity_available() -> bool:
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return False
    return True


def find_inception_weights(explicit: str | None = None) -> tuple[str, Path] | None:
    """``(flavour, path)`` of Inception weights already on disk, or None. Never downloads."""
    explicit = explicit or os.environ.get("GAN_INTERP_INCEPTION_WEIGHTS")
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise ConfigError(
                f"inception_weights={explicit} does not exist; point it at an Inception-v3 .pth file or unset it"
            )
        flavour = "fidelity" if p.name == FIDELITY_WEIGHTS and _fidelity_available() else "torchvision"
        return flavour, p
    hub = _hub_checkpoints()
    if (hub / FIDELITY_WEIGHTS).is_file() and _fidelity_available():
        return "fidelity", hub / FIDELITY_WEIGHTS
    if (hub / TORCHVISION_WEIGHTS).is_file():
        return "torchvision", hub / TORCHVISION_WEIGHTS
    return None


class TorchvisionInception(nn.Module):
    """torchvision Inception-v3 from a local state dict: (2048 pool features, 1000 logits)."""

    def __init__(self, weights_path: str | Path) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
        net.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        self.fc = net.fc
        net.fc = nn.Identity()
        net.aux_logits, net.AuxLogits = False, None
        self.net = net.eval()
        self.num_features = 2048

    def train(self, mode: bool = True) -> TorchvisionInception:  # always eval (BN/dropout frozen)
        return super().train(False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        # the Google weights expect [-1, 1] inputs, which is what our generators produce
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False, antialias=True)
        feats = self.net(x)
        return feats, self.fc(feats)


def inception_extractor(flavour: str, path: Path) -> FeatureExtractor:
    if flavour == "fidelity":
        from torchmetrics.image.fid import NoTrainInceptionV3

        net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(path),
        )

        def extract(x: Tensor) -> tuple[Tensor, Tensor | None]:
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            u8 = x.detach().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
            feats, logits = net(u8)
            return feats, logits

        return FeatureExtractor(
            "inception-fidelity", f"Inception-v3 FID features (torch-fidelity weights {path})", extract, 2048, net
        )
    net = TorchvisionInception(path)
    return FeatureExtractor(
        "inception-torchvision",
        f"Inception-v3 pool features (torchvision ImageNet weights {path}; "
        "close to but not identical with the TF FID network)",
        net,
        2048,
        net,
    )


# -- choice -----------------------------------------------------------------------------------------------
def build_feature_extractor(
    kind: str = "auto",  # auto | inception | domain | pixels
    datamodule: Any = None,  # needed for 'domain' (and 'auto' without Inception weights)
    cache_dir: str | Path | None = None,  # domain-net cache
    device: torch.device | str = "cpu",
    pixel_size: int = 16,
    inception_weights: str | None = None,  # explicit Inception weights file
    domain: dict[str, Any] | None = None,  # kwargs of load_or_train_domain_net (steps, dim, ...)
) -> FeatureExtractor:
    """Pick and build the feature extractor; the result's ``description`` says which and why."""
    if kind not in FEATURE_KINDS:
        raise ConfigError(f"features={kind!r} must be one of {', '.join(FEATURE_KINDS)}")
    if kind == "pixels":
        channels = datamodule.channels if datamodule is not None else 3
        return pixel_extractor(channels, pixel_size).to(device)
    found = find_inception_weights(inception_weights) if kind in ("auto", "inception") else None
    if found is not None:
        fx = inception_extractor(*found).to(device)
        log.info("metrics: using %s", fx.description)
        return fx
    if kind == "inception":
        raise ConfigError(
            f"features=inception but no Inception weights on disk (looked for {FIDELITY_WEIGHTS} and "
            f"{TORCHVISION_WEIGHTS} "
            f"in {_hub_checkpoints()}); copy one there, set GAN_INTERP_INCEPTION_WEIGHTS=/path/to/file.pth, or use "
            "features=domain"
        )
    if datamodule is None:
        raise ConfigError("features=domain needs the data module (the feature net is trained on the real images)")
    net, where = load_or_train_domain_net(datamodule, cache_dir, device=device, **(domain or {}))
    why = "Inception weights not found in the local cache, " if kind == "auto" else ""
    desc = (
        f"domain features: {why}using a conv autoencoder trained on the real training images "
        f"({net.dim}-d code, {net.centroids.shape[0]} k-means pseudo-classes for IS; {where}); "
        "FID/KID/IS are comparable between runs on this data only, not with published Inception numbers"
    )
    log.info("metrics: %s", desc)

    def extract(x: Tensor) -> tuple[Tensor, Tensor | None]:
        code = net(x)
        return code, net.logits(code)

    return FeatureExtractor("domain-autoencoder", desc, extract, net.dim, net)
