"""Config checks that turn bad values into one-line errors naming the field.

Two layers:

* :func:`check_group_choices` looks at command-line overrides *before* Hydra composes, so
  ``model=dcgna`` says ``model='dcgna' is not a known model; choose one of ...`` in one line
  (Hydra's own message is several lines plus a hint about HYDRA_FULL_ERROR).
* :func:`validate_config` checks the composed config: names, learning rates, resolution vs the
  model, precision vs double backward, batch size and split fractions, epochs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from gan_interp.errors import ConfigError, GanInterpError

DOUBLE_BACKWARD_BAD_PRECISIONS = ("16", "16-mixed", "16-true", "fp16")
KNOWN_PRECISIONS = (
    "32",
    "32-true",
    "bf16-mixed",
    "bf16-true",
    "64",
    "64-true",
    "16",
    "16-mixed",
    "16-true",
    "transformer-engine",
)


def group_options(conf_dir: Path, group: str) -> list[str]:
    """Names of the configs in one config group (``conf/<group>/*.yaml``)."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml") if not p.stem.startswith("_"))


def check_group_choices(argv: list[str], conf_dir: Path) -> None:
    """Reject unknown config-group choices in command-line overrides (``group=a,b`` and ``group=[a,b]`` too)."""
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        if key.startswith("hydra") or "." in key or "/" in key or not (conf_dir / key).is_dir():
            continue
        if value.startswith("[") and value.endswith("]"):  # a list of options (logger=[wandb,csv])
            value = value[1:-1]
        if any(tok in value for tok in ("(", "[", "]", "${", "*")) or value in ("null", ""):
            continue  # sweep functions, nested lists and interpolations are left to Hydra
        options = group_options(conf_dir, key)
        for choice in value.split(","):
            if choice not in options:
                raise ConfigError(f"{key}={choice!r} is not a known {key}; choose one of: {', '.join(options)}")


def _number(cfg: DictConfig, dotted: str, value: Any, kind: type) -> float:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{dotted}={value!r} must be a {kind.__name__}") from None


def _check_learning_rates(model_cfg: DictConfig) -> None:
    for key, value in model_cfg.items():
        key = str(key)
        is_lr = key == "lr" or key.startswith("lr_") or key.endswith("_lr")
        if is_lr and value is None:
            continue  # an optional rate (e.g. model.lr_d: null = the same as model.lr)
        if is_lr and _number(model_cfg, f"model.{key}", value, float) <= 0:
            raise ConfigError(f"model.{key}={value} must be > 0 (e.g. model.{key}=2e-4)")
    betas = model_cfg.get("betas")
    if betas is not None:
        for i, b in enumerate(betas):
            if not 0.0 <= _number(model_cfg, f"model.betas[{i}]", b, float) < 1.0:
                raise ConfigError(f"model.betas[{i}]={b} must be in [0, 1)")


def check_threads(cfg: DictConfig) -> int | None:
    """The ``threads=`` option (torch intra-op CPU threads) of the training and the checkpoint CLI:
    ``None`` (torch's default) or an int >= 1; anything else is a one-line :class:`ConfigError`."""
    threads = cfg.get("threads")
    if threads is None:
        return None
    if int(_number(cfg, "threads", threads, int)) < 1:
        raise ConfigError(f"threads={threads} must be >= 1 (or null for torch's default)")
    return int(threads)


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` (one line, names the field) for an unusable config."""
    from gan_interp.models import MODEL_REGISTRY, model_class

    name = cfg.model.get("name")
    if name not in MODEL_REGISTRY:
        raise ConfigError(f"model.name={name!r} is not a known model; choose one of: {', '.join(MODEL_REGISTRY)}")
    _check_learning_rates(cfg.model)
    check_threads(cfg)

    resolution = int(_number(cfg, "data.resolution", cfg.data.get("resolution"), int))
    model_class(name).check_resolution(resolution, name)  # before any data is built
    if int(_number(cfg, "data.batch_size", cfg.data.get("batch_size"), int)) < 1:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} must be >= 1")
    for key in ("val_fraction", "test_fraction"):
        frac = _number(cfg, f"data.{key}", cfg.data.get(key, 0.0), float)
        if not 0.0 <= frac < 1.0:
            raise ConfigError(f"data.{key}={frac} must be in [0, 1)")

    trainer = cfg.get("trainer", {})
    precision = str(trainer.get("precision", "32-true"))
    if precision not in KNOWN_PRECISIONS:
        raise ConfigError(f"trainer.precision={precision!r} is not a Lightning precision; use 32-true or bf16-mixed")
    if model_class(name).uses_double_backward and precision in DOUBLE_BACKWARD_BAD_PRECISIONS:
        raise ConfigError(
            f"trainer.precision={precision} is unsafe for {name} (gradient penalty needs double backward); "
            "use trainer.precision=32-true or bf16-mixed"
        )
    if trainer.get("sync_batchnorm") and str(trainer.get("accelerator", "auto")) == "cpu":
        raise ConfigError(
            "trainer.sync_batchnorm=true needs GPUs; with trainer.accelerator=cpu set trainer.sync_batchnorm=false"
        )
    _check_training_length(cfg, trainer)


def _check_training_length(cfg: DictConfig, trainer: Any) -> None:
    """A run must end: ``max_epochs >= 1``, or an explicit ``max_steps >= 1`` with ``max_epochs`` -1/null."""
    max_steps = trainer.get("max_steps")
    steps = -1 if max_steps is None else int(_number(cfg, "trainer.max_steps", max_steps, int))
    if steps == 0 or steps < -1:
        raise ConfigError(f"trainer.max_steps={max_steps} must be >= 1 (or -1: end by trainer.max_epochs)")
    max_epochs = trainer.get("max_epochs")
    epochs = None if max_epochs is None else int(_number(cfg, "trainer.max_epochs", max_epochs, int))
    if epochs is not None and epochs >= 1:
        return
    if steps >= 1 and epochs in (None, -1):
        return
    raise ConfigError(
        f"trainer.max_epochs={max_epochs} must be >= 1 (to run by steps instead, set trainer.max_epochs=-1 and "
        "trainer.max_steps=N optimizer steps)"
    )


def third_party_config_error(exc: BaseException, node: Any) -> ConfigError | None:
    """A one-line :class:`ConfigError` for a known third-party complaint about a config value, else ``None``.

    Known: Lightning's ``MisconfigurationException`` (e.g. ``trainer=gpu`` on a machine without a GPU)."""
    if type(exc).__name__ != "MisconfigurationException":
        return None
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    accelerator = node.get("accelerator") if hasattr(node, "get") else None
    if accelerator not in (None, "auto", "cpu") and ("backend" in first or "not available" in first):
        return ConfigError(
            f"trainer.accelerator={accelerator} is not available on this machine ({first}); "
            "use trainer=cpu or trainer.accelerator=auto"
        )
    return ConfigError(f"{first} (Lightning rejected the trainer config; check the trainer.* overrides)")


def instantiate_node(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, re-raising the one-line errors of our classes that Hydra would wrap
    and known third-party config complaints (:func:`third_party_config_error`) as :class:`ConfigError`."""
    import hydra
    from hydra.errors import InstantiationException

    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, GanInterpError):
            raise exc.__cause__ from None
        mapped = third_party_config_error(exc.__cause__, node) if exc.__cause__ is not None else None
        if mapped is not None:
            raise mapped from None
        raise
