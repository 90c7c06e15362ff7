"""Seeded generators: the same seed gives the same splits and samples.

Seeding the global random state of python, numpy and torch is ``transformers.set_seed``;
gfm does not wrap it. What gfm adds is a local generator, so that a loader's split or a
corpus sample does not depend on (or disturb) the global state.
"""

from __future__ import annotations

import torch

__all__ = ["torch_generator"]


def torch_generator(seed: int | None) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (fresh entropy when ``None``)."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator
