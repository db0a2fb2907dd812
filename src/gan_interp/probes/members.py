"""k-GAN members: samples and the medoid of every member generator (k-GAN thesis, figs. 8-9).

The medoid of a member is the generated sample with the smallest summed pixel distance to the
member's other samples (an actual sample, unlike the mean image): ``sample_medoids.png``, the
medoids of *generated* samples, distinct from the *real* cell medoids of the partition
(``<run>/kgan/epoch_XXX/cell_medoids.png``). The probe also reports how far apart the members'
medoids are and how diverse each member is. Requires members (``model.n_members > 0``; each seen
through ``model.member_view(j)``).
"""

from __future__ import annotations

import torch

from gan_interp.probes import figures
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.latents import fixed_z, generate_batched
from gan_interp.probes.neighbours import medoid
from gan_interp.probes.registry import register_probe
from gan_interp.probes.traversals import diversity


@register_probe("members", requires=("members",))
def members_probe(
    ctx: ProbeContext,
    n: int = 8,  # samples shown per member
    n_medoid: int = 64,  # samples per member the medoid is picked from
) -> dict:
    """Per-member sample rows and medoids for k-GAN models."""
    model, out = ctx.model, ctx.out
    k = model.n_members
    z = fixed_z(model, max(n, n_medoid), ctx.seed)  # the same z for every member: differences are the members'
    rows, medoids, info = [], [], {}
    for j in range(k):
        imgs = generate_batched(model.member_view(j), z, 64).detach().cpu()
        m = medoid(imgs[:n_medoid])
        rows.append(imgs[:n])
        medoids.append(imgs[m])
        info[str(j)] = {"medoid_index": m, "diversity": diversity(imgs[:n_medoid])}
    out.image("samples", figures.image_grid(torch.cat(rows), nrow=n), caption="row j: member j, same z in every row")
    med = torch.stack(medoids)
    out.image("sample_medoids", figures.image_grid(med, nrow=k), caption="medoid of each member's generated samples")
    dist = torch.cdist(med.flatten(1), med.flatten(1))
    summary = {"k": k, "members": info, "medoid_distances": dist.tolist()}
    out.json("summary", summary)
    return summary
