"""Known third-party noise on stderr, filtered at its source by exact message (real warnings stay visible).

* Lightning 2.6's ``lightning.pytorch.utilities._pytree``: "`isinstance(treespec, LeafSpec)` is deprecated"
  (a torch deprecation inside Lightning's own code, once per run; nothing a user can change);
* Lightning's logger connector: the "Tip: ... litlogger" advert on every Trainer.
"""

from __future__ import annotations

import logging
import warnings

PYTREE_DEPRECATION = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
LIGHTNING_TIP_PREFIX = "💡 Tip:"
RANK_ZERO_LOGGER = "lightning.pytorch.utilities.rank_zero"


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(LIGHTNING_TIP_PREFIX)


def quiet_known_noise() -> None:
    """Install the filters (idempotent); call before building a Trainer."""
    warnings.filterwarnings("ignore", message=PYTREE_DEPRECATION)
    logger = logging.getLogger(RANK_ZERO_LOGGER)
    if not any(isinstance(f, _DropTips) for f in logger.filters):
        logger.addFilter(_DropTips())
