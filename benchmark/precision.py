"""Mixed-precision training that is fast on every CPU.

`precision: bf16` trains under bf16 autocast: matrix products take bf16-rounded inputs, accumulate in
float32 and round their result to bf16. CPUs with bf16 instructions (AVX512-BF16, AMX) and GPUs do this
in hardware; on other CPUs (AVX2 only, e.g. AMD EPYC before Zen 4) PyTorch falls back to a generic
kernel about 30x slower than a float32 product, which turns a 30 s epoch into a quarter of an hour.
There, the same arithmetic is done by a float32 product of the bf16 inputs rounded back to bf16:
rounding happens at the same points, so the results match native bf16 up to summation order, as
they would on another machine.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map_only

Bf16Matmul = Literal["native", "emulated"]

# The matrix products that bf16 autocast runs in bf16 decompose into these aten kernels (forward and
# backward alike).
_PRODUCTS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default,
             torch.ops.aten.baddbmm.default, torch.ops.aten.addbmm.default}


@functools.cache
def bf16_matmul(device: str) -> Bf16Matmul:
    """How bf16 matrix products run on `device`: in hardware, or emulated through float32 (a CPU
    without bf16 instructions). Asked once per device, not at every training step."""
    if torch.device(device).type != "cpu":
        return "native"
    return "native" if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported() else "emulated"


@contextlib.contextmanager
def training_precision(device: str, precision: str, *, matmul: Bf16Matmul | None = None) -> Iterator[None]:
    """Run the matrix products of everything inside (forward and backward) as `precision` requires on
    `device`; autocast itself is entered around the forward pass by `autocast`. `matmul` overrides the
    detected kind of bf16 products (tests)."""
    if precision == "bf16" and (matmul or bf16_matmul(device)) == "emulated":
        with _Float32Products():
            yield
    else:
        yield


def autocast(device: str, precision: str) -> torch.autocast:
    """The autocast context of a forward pass at `precision` (fp32: disabled)."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


class _Float32Products(TorchDispatchMode):
    """Replaces each all-bf16 matrix product by the float32 product of its inputs rounded to bf16."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _PRODUCTS:
            tensors = [leaf for leaf in tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor)]
            if tensors and all(t.dtype == torch.bfloat16 for t in tensors):
                args, kwargs = tree_map_only(torch.Tensor, lambda t: t.float(), (args, kwargs))
                return func(*args, **kwargs).to(torch.bfloat16)
        return func(*args, **kwargs)
