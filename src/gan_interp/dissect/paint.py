"""Paint with units (GAN Dissection): insert or ablate a concept's top units inside a rectangle and write the images.

    python -m gan_interp.dissect.paint ckpt=<run>/checkpoints/last.ckpt concept=orb box=[8,8,24,24] out=paint/
    gan-interp-paint ckpt=... concept=title_band box=[0,20,32,32] mode=ablate n=16

Options (``key=value``): ``ckpt``, ``concept``, ``box`` ([x0, y0, x1, y1] in pixels of the generated image,
x1/y1 exclusive) and ``out`` (a folder) are required; ``mode`` insert|ablate (insert), ``n`` images (8),
``units`` top units of the concept (4), ``scale`` and ``basis`` the inserted value: scale x the unit's
top-quantile threshold (``basis=threshold``, default scale 2) or x its mean activation on the concept
(``basis=concept_mean``), ``layer`` generator layer (auto: the dissection probe's middle layer), ``seed`` latents (0),
``dissect_samples`` samples that rank the units (256), ``segmenter`` auto|trained|colour (auto), ``threads``.

Writes ``before_XXX.png`` and ``edited_XXX.png`` per image, ``paint.png`` (before / after / difference,
the region outlined) and ``paint.json`` (units, values, the concept's fraction inside/outside the region).
Bad input is one ``error: ...`` line and exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from gan_interp.errors import ConfigError, one_line_errors

REQUIRED = ("ckpt", "concept", "box", "out")
DEFAULTS: dict[str, Any] = {
    "mode": "insert",
    "n": 8,
    "units": 4,
    "scale": 2.0,
    "basis": "threshold",
    "layer": "auto",
    "seed": 0,
    "dissect_samples": 256,
    "segmenter": "auto",
    "threads": None,
}
USAGE = "python -m gan_interp.dissect.paint ckpt=<run>/checkpoints/last.ckpt concept=<name> box=[x0,y0,x1,y1] out=<dir>"
INTS = ("n", "units", "seed", "dissect_samples", "threads")


def parse_box(text: Any) -> list[int]:
    """``"[x0,y0,x1,y1]"`` / ``"x0,y0,x1,y1"`` / a list -> four ints (ranges are checked against the model)."""
    parts = text if isinstance(text, (list, tuple)) else str(text).strip().strip("[]()").split(",")
    try:
        values = [int(str(p).strip()) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ConfigError(f"box={text} must be four integers [x0,y0,x1,y1] in image pixels (x1, y1 exclusive)")
    return values


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``key=value`` arguments -> options (types converted, required keys present), or a one-line ConfigError."""
    opts: dict[str, Any] = dict(DEFAULTS)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in (*REQUIRED, *DEFAULTS):
            raise ConfigError(
                f"argument {arg!r} is not key=value with a known key ({', '.join((*REQUIRED, *DEFAULTS))})"
            )
        opts[key] = value
    missing = [k for k in REQUIRED if k not in opts]
    if missing:
        raise ConfigError(f"missing {', '.join(f'{k}=' for k in missing)}; usage: {USAGE}")
    for key in INTS:
        if opts[key] is not None and opts[key] != "null":
            try:
                opts[key] = int(opts[key])
            except (TypeError, ValueError):
                raise ConfigError(f"{key}={opts[key]} must be an integer") from None
            if opts[key] < 1 and key != "seed":
                raise ConfigError(f"{key}={opts[key]} must be >= 1")
        else:
            opts[key] = None
    try:
        opts["scale"] = float(opts["scale"])
    except ValueError:
        raise ConfigError(f"scale={opts['scale']} must be a number > 0") from None
    if opts["basis"] not in ("threshold", "concept_mean"):
        raise ConfigError(f"basis={opts['basis']} must be threshold or concept_mean")
    if opts["scale"] <= 0:
        raise ConfigError(f"scale={opts['scale']} must be > 0")
    if opts["mode"] not in ("insert", "ablate"):
        raise ConfigError(f"mode={opts['mode']} must be insert or ablate")
    opts["box"] = parse_box(opts["box"])
    opts["layer"] = None if opts["layer"] in ("auto", "null", None) else opts["layer"]
    return opts


def paint(
    model: Any,  # GANModule (eval)
    segmenter: Any,  # images -> bool concept masks (ranks the concept's units, measures the effect)
    concept: str,  # a segmenter concept
    box: list[int],  # [x0, y0, x1, y1] image pixels
    mode: str = "insert",  # insert | ablate
    n: int = 8,  # images written
    n_units: int = 4,  # the concept's top units (top-quantile IoU)
    scale: float = 2.0,  # insertion value = scale x basis (gan_interp.dissect.spatial.insert_values)
    layer: str | None = None,  # generator layer; None = the dissection probe's middle layer
    seed: int = 0,  # latents of the images (the dissection uses seed + 1000)
    dissect_samples: int = 256,  # samples that rank the units
    basis: str = "threshold",  # 'threshold' (the unit's top-quantile level) or 'concept_mean'
) -> dict[str, Any]:
    """Dissect, pick ``concept``'s top units, edit them inside ``box``: images and the measured effect."""
    from gan_interp.dissect.dissection import dissect
    from gan_interp.dissect.spatial import check_box, edited_images, insert_values, region_effect

    if concept not in segmenter.concept_names:
        raise ConfigError(f"concept={concept} is not one of the segmenter's: {', '.join(segmenter.concept_names)}")
    check_box(box, model.resolution)
    result = dissect(model, segmenter, layer, n_samples=dissect_samples, seed=seed + 1000)
    k = result.concept_index(concept)
    units = result.units_for(k, min(n_units, result.n_units))
    value = insert_values(result, units, k, scale, basis) if mode == "insert" else 0.0
    before, after = edited_images(model, result.layer, units, box, value, n, seed)
    effect = region_effect(model, result.layer, units, segmenter, k, box, value, n_samples=n, seed=seed)
    report = {"concept": concept, "mode": mode, "layer": result.layer, "units": units.tolist(), "box": list(box)}
    report["value"] = value.tolist() if mode == "insert" else 0.0
    return {"before": before, "after": after, "report": {**report, **effect}}


def write_outputs(out_dir: Path, painted: dict[str, Any]) -> None:
    """``before_XXX.png``, ``edited_XXX.png``, ``paint.png`` and ``paint.json`` in ``out_dir``."""
    from torchvision.utils import save_image

    from gan_interp.dissect.figures import insertion_figure
    from gan_interp.io import atomic_path, write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    rep = painted["report"]
    for i, (b, a) in enumerate(zip(painted["before"], painted["after"])):
        for name, img in ((f"before_{i:03d}.png", b), (f"edited_{i:03d}.png", a)):
            with atomic_path(out_dir / name) as tmp:
                save_image(img.add(1).mul(0.5).clamp(0, 1), tmp, format="png")
    title = f"{rep['mode']} {rep['concept']} (units {rep['units']}, {rep['layer']})"
    with atomic_path(out_dir / "paint.png") as tmp:
        save_image(insertion_figure(painted["before"], painted["after"], rep["box"], title), tmp, format="png")
    write_json(rep, out_dir / "paint.json")


def run(opts: dict[str, Any]) -> dict[str, Any]:
    """Load the checkpoint and its data, build the segmenter, paint, write; returns the report."""
    import torch

    from gan_interp.dissect.segmenter import build_segmenter
    from gan_interp.dissect.spatial import check_box
    from gan_interp.scorecard.models import load_trained

    if opts["threads"]:
        torch.set_num_threads(opts["threads"])
    model, dm = load_trained(opts["ckpt"])
    check_box(opts["box"], model.resolution)  # before the segmenter is (maybe) trained
    seg = build_segmenter(opts["segmenter"], dm, dm.cache_dir, steps=400, width=16, seed=0)  # the probe's defaults
    painted = paint(
        model,
        seg,
        opts["concept"],
        opts["box"],
        mode=opts["mode"],
        n=opts["n"],
        n_units=opts["units"],
        scale=opts["scale"],
        layer=opts["layer"],
        seed=opts["seed"],
        dissect_samples=opts["dissect_samples"],
        basis=opts["basis"],
    )
    write_outputs(Path(opts["out"]), painted)
    return painted["report"]


def main(argv: list[str] | None = None) -> int:
    """Console entry (``gan-interp-paint``): 0 on success, exit 2 with one ``error:`` line on bad input."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    with one_line_errors():
        opts = parse_args(argv)
        rep = run(opts)
    print(
        f"{rep['mode']} {rep['concept']} units {rep['units']} in {rep['box']}: concept fraction inside "
        f"{rep['inside_before']:.3f} -> {rep['inside_after']:.3f}, outside {rep['outside_before']:.3f} -> "
        f"{rep['outside_after']:.3f}; images in {opts['out']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
