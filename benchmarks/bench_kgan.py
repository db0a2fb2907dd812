"""k-GAN members: one grouped computation for k=3 vs a Python loop over 3 members vs 3 x one member.

One step = one WGAN-GP critic update (real and fake scores, gradient penalty with double backward)
plus one generator update, with the k-GAN's own loss code (``losses.wgan_gp_critic_losses``,
``losses.wgan_generator_losses``) and one Adam per net kind: the grouped nets (``groups=3``, what
training runs), the same work as a loop over three ``groups=1`` member nets, and one member alone
(times 3 = the members' own work). The variants run interleaved in this one process (grouped, loop,
one, ...) so machine noise hits all of them; medians of the step times are compared. Targets
(issue 16): grouped <= 1.05 x (3 x one member) on a CPU and faster than the loop. For the record
the same step through ``torch.func`` (``stack_module_state`` + ``functional_call`` + ``vmap``) is
timed too (the alternative the grouped layout was chosen over; see :mod:`gan_interp.models.kgan_nets`).
Threads: ``BENCH_THREADS`` (default 1), restored afterwards.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from gan_interp.models.kgan_nets import StagedNet, init_member_weights, make_critic, make_generator
from gan_interp.models.losses import wgan_generator_losses, wgan_gp_critic_losses

K, LATENT, GP_LAMBDA = 3, 100, 10.0


def _nets(groups: int, width: int, channels: int, resolution: int) -> tuple[StagedNet, StagedNet, list]:
    g = make_generator("thesis", LATENT, width, channels, resolution, groups=groups)
    d = make_critic("thesis", width, channels, resolution, groups=groups)
    g.apply(init_member_weights)
    d.apply(init_member_weights)
    opts = [torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.0, 0.9)) for net in (g, d)]
    return g, d, opts


def _update(opt: torch.optim.Optimizer, loss: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def member_step(g: StagedNet, d: StagedNet, opts: list, real: Tensor, groups: int) -> None:
    """One critic update and one generator update of ``groups`` members (grouped layout)."""
    n = real.shape[0]
    with torch.no_grad():
        fake = g(torch.randn(n, groups * LATENT))
    _update(opts[1], wgan_gp_critic_losses(d, real, fake, GP_LAMBDA, groups)[0])
    d.requires_grad_(False)  # the generator update computes no critic gradients (as Lightning's toggle)
    _update(opts[0], wgan_generator_losses(d(g(torch.randn(n, groups * LATENT))))[0])
    d.requires_grad_(True)


def vmap_step_fn(members: list[tuple[StagedNet, StagedNet]]) -> Callable[[Tensor], None]:
    """The same step with torch.func: stacked member weights, ``vmap(functional_call)`` (for the record)."""
    from torch.func import functional_call, stack_module_state, vmap

    gp_, gb = stack_module_state([g for g, _ in members])
    dp, db = stack_module_state([d for _, d in members])
    opts = [torch.optim.Adam(list(p.values()), lr=1e-4, betas=(0.0, 0.9)) for p in (gp_, dp)]
    g0, d0 = (copy.deepcopy(net).to("meta") for net in members[0])
    gen = vmap(lambda p, b, z: functional_call(g0, (p, b), (z,)), randomness="different")
    crit = vmap(lambda p, b, x: functional_call(d0, (p, b), (x,)))

    def step(real: Tensor) -> None:  # real [k, n, C, H, W]
        k, n = real.shape[:2]
        with torch.no_grad():
            fake = gen(gp_, gb, torch.randn(k, n, LATENT))
        alpha = torch.rand(k, n, 1, 1, 1)
        x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(crit(dp, db, x_hat).sum(), x_hat, create_graph=True)
        gp = ((grad.flatten(2).pow(2).sum(2) + 1e-12).sqrt() - 1).pow(2).mean(1)
        w_loss = crit(dp, db, fake).flatten(1).mean(1) - crit(dp, db, real).flatten(1).mean(1)
        _update(opts[1], (w_loss + GP_LAMBDA * gp).sum())
        for p in dp.values():
            p.requires_grad_(False)
        _update(opts[0], -crit(dp, db, gen(gp_, gb, torch.randn(k, n, LATENT))).flatten(1).mean(1).sum())
        for p in dp.values():
            p.requires_grad_(True)

    return step


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(quick: bool = False) -> list[dict]:
    threads = int(os.environ.get("BENCH_THREADS", "1"))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _measure(quick, threads)
    finally:
        torch.set_num_threads(previous)


def _measure(quick: bool, threads: int) -> list[dict]:
    torch.manual_seed(0)
    batch, width, reps = (16, 16, 3) if quick else (64, 64, 7)
    channels, resolution = 3, 32
    grouped = _nets(K, width, channels, resolution)
    loop = [_nets(1, width, channels, resolution) for _ in range(K)]
    one = _nets(1, width, channels, resolution)
    vmapped = vmap_step_fn([(g, d) for g, d, _ in loop])  # stacked copies of the loop's members
    real = torch.rand(K, batch, channels, resolution, resolution) * 2 - 1
    real_grouped = real.transpose(0, 1).reshape(batch, K * channels, resolution, resolution)
    variants = {
        "grouped": lambda: member_step(*grouped, real_grouped, K),
        "loop": lambda: [member_step(*loop[j], real[j], 1) for j in range(K)],
        "one": lambda: member_step(*one, real[0], 1),
        "vmap": lambda: vmapped(real),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(reps + 1):  # the first round warms up
        for name, fn in variants.items():
            t = _timed(fn)
            if rep:
                times[name].append(t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    k_one = K * med["one"]
    detail = (
        f"median step ms: grouped {med['grouped'] * 1e3:.0f}, loop {med['loop'] * 1e3:.0f}, "
        f"one member {med['one'] * 1e3:.0f} (x{K} = {k_one * 1e3:.0f}), torch.func vmap {med['vmap'] * 1e3:.0f}; "
        f"thesis nets ngf=ndf={width}, {resolution} px, batch {batch} per member, {reps} steps each, "
        f"{threads} thread(s)"
    )
    return [
        {
            "name": "kgan_grouped_vs_k_members",
            "measured": f"{med['grouped'] / k_one:.3f}x",
            "target": "<= 1.05x",
            "ok": med["grouped"] <= 1.05 * k_one,
            "detail": detail,
        },
        {
            "name": "kgan_grouped_vs_loop",
            "measured": f"{med['grouped'] / med['loop']:.3f}x",
            "target": "< 1x",
            "ok": med["grouped"] < med["loop"],
            "detail": f"vmap vs grouped: {med['vmap'] / med['grouped']:.3f}x",
        },
    ]
