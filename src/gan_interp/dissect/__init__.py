"""GAN Dissection (Bau et al. 2019): which generator units draw which concepts, and what editing them does.

* :mod:`~gan_interp.dissect.quantile` - per-unit streaming quantile sketch (bounded memory);
* :mod:`~gan_interp.dissect.iou` - streaming unit/concept IoU and the IQR threshold;
* :mod:`~gan_interp.dissect.segmenter` - concept segmenters (trained on poster masks, colours, user);
* :mod:`~gan_interp.dissect.dissection` - the two-pass dissection of a generator layer;
* :mod:`~gan_interp.dissect.intervene` - ablate/insert units, average causal effect (vs random units),
  artifact units;
* :mod:`~gan_interp.dissect.spatial` - insert/ablate units inside a region, inside vs outside, the context table;
* :mod:`~gan_interp.dissect.paint` - the ``paint`` command (``python -m gan_interp.dissect.paint``);
* :mod:`~gan_interp.dissect.planted` - planted generators whose units are concept masks (known answers);
* :mod:`~gan_interp.dissect.figures` - the dissection figures (summary chart, unit strips, ACE chart,
  insertion before / after / difference).

The Interpretable-GAN training regulariser (Li et al. 2022) is a model option:
:mod:`gan_interp.models.interpretable`.

The ``dissection`` probe that runs all this is :mod:`gan_interp.probes.dissection`.
"""

from gan_interp.dissect.dissection import DissectionResult, dissect, resolve_layer
from gan_interp.dissect.iou import ConceptTally, binary_iou, iqr_from_counts, upsample_maps
from gan_interp.dissect.quantile import QuantileSketch

__all__ = [
    "ConceptTally",
    "DissectionResult",
    "QuantileSketch",
    "binary_iou",
    "dissect",
    "iqr_from_counts",
    "resolve_layer",
    "upsample_maps",
]
