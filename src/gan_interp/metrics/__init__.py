"""Evaluation metrics for generators (the seed study "How to evaluate GANs").

* :mod:`~gan_interp.metrics.mmd` - unbiased MMD^2 (RBF, median heuristic) + permutation p-value;
* :mod:`~gan_interp.metrics.c2st` - classifier two-sample test with its normal-approximation p-value;
* :mod:`~gan_interp.metrics.quality` - sharpness (Laplacian variance), noise (Immerkaer), total variation;
* :mod:`~gan_interp.metrics.memorisation` - nearest-neighbour memorisation score;
* :mod:`~gan_interp.metrics.fid` - FID / KID / IS through torchmetrics on pluggable features;
* :mod:`~gan_interp.metrics.ssim` - SSIM (torchmetrics) of fakes to their nearest real image, and within each set;
* :mod:`~gan_interp.metrics.prdc` - precision / recall (k=3) and density / coverage (k=5) on the features;
* :mod:`~gan_interp.metrics.features` - Inception (only from a local cache) / domain net / pixels;
* :mod:`~gan_interp.metrics.registry` - ``@register_metric(name, needs=..., spaces=...)``: what each metric reads;
* :mod:`~gan_interp.metrics.builtin` - the built-in metrics registered (adapters to the modules above);
* :mod:`~gan_interp.metrics.settings` - ``MetricsSettings``: which metrics, n, features (``conf/metrics/``);
* :mod:`~gan_interp.metrics.runner` - ``evaluate(model, datamodule, settings)``, ``compute_metrics(...)``.
"""

from gan_interp.metrics.c2st import C2STResult, c2st, c2st_p_value
from gan_interp.metrics.mmd import MMDResult, mmd2_unbiased, mmd_test
from gan_interp.metrics.registry import metric_names, register_metric
from gan_interp.metrics.runner import MetricsResult, compute_metrics, evaluate
from gan_interp.metrics.settings import MetricsSettings

__all__ = [
    "C2STResult",
    "MMDResult",
    "MetricsResult",
    "MetricsSettings",
    "c2st",
    "c2st_p_value",
    "compute_metrics",
    "evaluate",
    "metric_names",
    "mmd2_unbiased",
    "mmd_test",
    "register_metric",
]
