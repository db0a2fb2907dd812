"""gan-interp: train GANs with Lightning + Hydra and look inside them."""

from gan_interp.errors import ConfigError, DataError, GanInterpError

__all__ = ["ConfigError", "DataError", "GanInterpError", "__version__"]
__version__ = "0.1.0"
