"""Reading saved checkpoints and rebuilding what they belong to (the checkpoint CLI and the studies use it).

* :func:`checkpoint_file` / :func:`load_checkpoint` - an existing, readable Lightning checkpoint or a
  one-line :class:`~gan_interp.errors.ConfigError` naming the file and the fix;
* :func:`run_dir_of_checkpoint` / :func:`load_run_config` - ``<run>`` for ``<run>/checkpoints/x.ckpt``
  and the training config it was made with (``.hydra/config.yaml`` or ``config_resolved.json``);
* :func:`merged_paths` / :func:`build_model_and_data` - the run's data module and model, weights loaded.

Checkpoints are read with ``torch.load(weights_only=True)``. Checkpoints written before the
models stored plain hyperparameters contain OmegaConf containers; those few data-only classes
are allow-listed (``torch.serialization.safe_globals``). Anything else needs ``trust=True``
(``trust_checkpoint=true`` on the command line: a full unpickle, only for files you trust).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from gan_interp.data.channels import resolve_channels
from gan_interp.errors import ConfigError

PATH_KEYS = ("root_dir", "data_dir", "cache_dir")
# data-only classes old Lightning checkpoints carry in their hyperparameters (OmegaConf containers)
SAFE_DATA_GLOBALS = (
    "omegaconf.listconfig.ListConfig",
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode",
    "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode",
    "omegaconf.nodes.StringNode",
    "omegaconf.nodes.BooleanNode",
    "omegaconf.nodes.ValueNode",
    "typing.Any",
    "collections.defaultdict",
    "builtins.dict",
    "builtins.list",
    "builtins.int",
    "builtins.float",
    "builtins.str",
    "builtins.bool",
    "builtins.tuple",
    "builtins.set",
    "collections.OrderedDict",
)


def _import_global(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    return getattr(__import__(module, fromlist=[attr]), attr)


def checkpoint_file(path: str | Path) -> Path:
    """``path`` as an existing file, or a one-line :class:`ConfigError` naming it."""
    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise ConfigError(
            f"ckpt_path={path} does not exist; pass a checkpoint file such as <run>/checkpoints/last.ckpt"
        )
    return p


def load_checkpoint(path: str | Path, trust: bool = False) -> dict[str, Any]:
    """Read a Lightning checkpoint safely (see module doc); one-line :class:`ConfigError` if unusable."""
    import torch  # (imported lazily: the CLI's argument errors come back instantly)

    p = checkpoint_file(path)
    if trust:
        return torch.load(p, map_location="cpu", weights_only=False)
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as first:  # noqa: BLE001 - classify below
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(p)
        except Exception:
            raise ConfigError(
                f"ckpt_path={path} is not a readable PyTorch checkpoint ({type(first).__name__})"
            ) from None
        if not unsafe:
            raise ConfigError(
                f"ckpt_path={path} is not a readable PyTorch checkpoint ({type(first).__name__}: "
                f"{str(first).splitlines()[0]})"
            ) from None
        blocked = [g for g in unsafe if g not in SAFE_DATA_GLOBALS]
        if blocked:
            raise ConfigError(
                f"ckpt_path={path} contains non-tensor objects ({', '.join(blocked[:3])}); "
                "if you trust the file, pass trust_checkpoint=true"
            ) from None
        with torch.serialization.safe_globals([_import_global(g) for g in unsafe]):
            return torch.load(p, map_location="cpu", weights_only=True)


def state_dict_mismatch(saved: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """The first difference between a checkpoint's ``state_dict`` and a model's (missing/unexpected key,
    shape), or ``None`` when a strict load would fit."""
    for key, tensor in expected.items():
        if key not in saved:
            return f"missing weight {key}"
        if tuple(saved[key].shape) != tuple(tensor.shape):
            return f"{key} has shape {list(saved[key].shape)}, the model needs {list(tensor.shape)}"
    unexpected = [k for k in saved if k not in expected]
    return f"unexpected weight {unexpected[0]}" if unexpected else None


def check_resume_checkpoint(path: str | Path, model: Any, trust: bool = False) -> None:
    """A checkpoint training can resume from: readable, a Lightning checkpoint, weights that fit ``model``;
    else a one-line :class:`ConfigError` naming the file and the fix."""
    ckpt = load_checkpoint(path, trust)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ConfigError(f"ckpt_path={path} has no 'state_dict' (not a Lightning checkpoint of a gan_interp model)")
    resume_error = getattr(model, "resume_error", None)  # a model may know an old layout it cannot resume
    reason = resume_error(ckpt) if callable(resume_error) else None
    if reason:
        raise ConfigError(f"ckpt_path={path} is {reason}")
    mismatch = state_dict_mismatch(ckpt["state_dict"], model.state_dict())
    if mismatch:
        name = getattr(getattr(model, "hparams", {}), "get", lambda _k: None)("name") or type(model).__name__
        raise ConfigError(
            f"ckpt_path={path} does not fit model {name} of this config ({mismatch}); "
            "resume with the model.* settings the checkpoint was trained with"
        )


def run_dir_of_checkpoint(ckpt_path: str | Path) -> Path:
    """``<run>`` for ``<run>/checkpoints/<name>.ckpt``."""
    return Path(str(ckpt_path)).expanduser().absolute().parent.parent


def load_run_config(run_dir: Path, ckpt_path: str | Path) -> DictConfig:
    """The training config of a run: ``.hydra/config.yaml`` or ``config_resolved.json``."""
    hydra_cfg, resolved = run_dir / ".hydra" / "config.yaml", run_dir / "config_resolved.json"
    if hydra_cfg.is_file():
        return OmegaConf.load(hydra_cfg)  # type: ignore[return-value]
    if resolved.is_file():
        return OmegaConf.create(json.loads(resolved.read_text()))
    raise ConfigError(
        f"ckpt_path={ckpt_path}: no training config next to it (looked for {hydra_cfg} and {resolved}); "
        "the checkpoint must sit in <run>/checkpoints/ of a gan_interp.train run"
    )


def merged_paths(
    run_paths: DictConfig | None, probe_paths: DictConfig, explicit: set[str], output_dir: Path
) -> DictConfig:
    """The probe's ``paths`` node, except literal values the training run used (unless overridden now)."""
    merged = OmegaConf.create(OmegaConf.to_container(probe_paths, resolve=False))
    raw = OmegaConf.to_container(run_paths, resolve=False) if run_paths is not None else {}
    for key in PATH_KEYS:
        value = raw.get(key)
        if key not in explicit and isinstance(value, str) and "${" not in value:
            merged[key] = value
    merged.output_dir = str(output_dir)
    return merged  # type: ignore[return-value]


def build_model_and_data(run_cfg: DictConfig, paths: DictConfig, ckpt: dict[str, Any]) -> tuple[Any, Any]:
    """Instantiate the run's data module and model, then load the checkpoint's weights."""
    cfg = OmegaConf.create(OmegaConf.to_container(run_cfg, resolve=False))
    with open_dict(cfg):
        cfg.paths = paths
    resolve_channels(cfg)  # runs saved with data.channels: null infer the same count again
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.source.check()
    datamodule.setup()
    model = hydra.utils.instantiate(cfg.model)
    if "state_dict" not in ckpt:
        raise ConfigError("ckpt_path: the file has no 'state_dict' (not a Lightning checkpoint of a gan_interp model)")
    model.on_load_checkpoint(ckpt)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(
            f"ckpt_path: weights do not fit model {cfg.model.get('name')} of the run config ({first})"
        ) from None
    return model, datamodule
