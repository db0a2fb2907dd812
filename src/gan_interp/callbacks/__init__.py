"""Lightning callbacks: sample grids (and, in their own modules, probes and metrics)."""

from gan_interp.callbacks.sample_grid import SampleGridCallback

__all__ = ["SampleGridCallback"]
