"""Where the project's Hydra configs live."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    """Return the Hydra config directory (``conf/`` at the repository root).

    ``GAN_INTERP_CONF`` overrides it (e.g. for a non-editable install or a private config tree).
    """
    env = os.environ.get("GAN_INTERP_CONF")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "conf"
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError("cannot find the gan-interp config directory 'conf/'; set GAN_INTERP_CONF=/path/to/conf")
