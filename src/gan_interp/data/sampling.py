"""Probe inputs: a seeded, class-stratified ordering of a split's positions.

Probes look at "the first n real images"; on a class-sorted folder the first n rows of the cache are
all one class. :func:`probe_order` orders a split so that every prefix is a random sample of it:

- without labels (or one class): a seeded permutation;
- with labels: one image of every class first (classes in random order), then the rest with each
  class spread evenly (class ``c``'s ``j``-th image has key ``(j + u_c) / count_c``, ``u_c`` random in
  ``[0, 1)``), so any prefix of length ``n >= n_classes`` covers every class and keeps roughly the
  classes' proportions.

The generator is seeded from the split seed and the split name only: the sample is the same every
epoch and independent of the training RNG.
"""

from __future__ import annotations

import zlib

import numpy as np

PROBE_SAMPLE_SALT = 0x5EED  # separates the probe sample's stream from the split's own permutation


def probe_rng(split_seed: int, split: str) -> np.random.Generator:
    """The generator of a split's probe sample (never the global or training RNG)."""
    return np.random.default_rng([int(split_seed), zlib.crc32(split.encode()), PROBE_SAMPLE_SALT])


def probe_order(
    n: int,  # number of positions in the split
    labels: np.ndarray | None,  # class label per position (None: unlabelled)
    rng: np.random.Generator,  # see probe_rng
) -> np.ndarray:
    """A permutation of ``range(n)`` whose every prefix is a (stratified) random sample."""
    if labels is None or len(np.unique(labels)) < 2:
        return rng.permutation(n).astype(np.int64)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    first_rank = rng.permutation(len(classes))  # order of the one-per-class opening round
    keys = np.empty(n, dtype=np.float64)
    opening = np.zeros(n, dtype=bool)
    for ci, c in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        keys[members] = (np.arange(len(members)) + rng.random()) / len(members)
        keys[members[0]] = first_rank[ci]
        opening[members[0]] = True
    tiebreak = rng.random(n)
    # opening round first (by rank), then the rest by key; lexsort sorts by the last key first
    return np.lexsort((tiebreak, keys, ~opening)).astype(np.int64)
