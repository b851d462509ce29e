"""Training on CPUs: emulated bf16 products keep bf16's arithmetic; large tensors use huge pages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from baselines.sasrec import SASRec, SASRecConfig
from benchmark.interfaces import SequenceBatch
from benchmark.precision import autocast, bf16_matmul, training_precision


def test_an_emulated_product_is_the_float32_product_of_the_bf16_inputs_rounded_to_bf16():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(40, 300, generator=generator)
    b = torch.randn(300, 50, generator=generator)
    bias = torch.randn(50, generator=generator)
    expected = (a.bfloat16().float() @ b.bfloat16().float()).bfloat16()
    with training_precision("cpu", "bf16", matmul="emulated"), autocast("cpu", "bf16"):
        assert _get_current_dispatch_mode() is not None
        product = a @ b
        batched = torch.bmm(a[None], b[None])
        with_bias = torch.nn.functional.linear(a, b.T, bias)
    assert product.dtype == batched.dtype == with_bias.dtype == torch.bfloat16
    assert torch.equal(product, expected) and torch.equal(batched[0], expected)
    assert torch.equal(with_bias, (a.bfloat16().float() @ b.bfloat16().float() + bias.bfloat16().float()).bfloat16())


def _loss_and_gradients(precision: str, matmul: str | None) -> tuple[float, torch.Tensor]:
    torch.manual_seed(0)
    model = SASRec(500, SASRecConfig(dim=64, blocks=2, heads=2, dropout=0.1, max_len=30))
    generator = torch.Generator().manual_seed(0)
    sequences = torch.randint(1, 501, (64, 31), generator=generator)
    batch = SequenceBatch(*model.training_batch(torch.arange(64), sequences, generator))
    with training_precision("cpu", precision, matmul=matmul):
        with autocast("cpu", precision):
            loss = model.loss(model.hidden_states(batch.inputs)[-1], batch, generator)
        loss.backward()
    return float(loss.detach()), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_emulated_bf16_training_matches_native_bf16_much_closer_than_float32():
    emulated_loss, emulated = _loss_and_gradients("bf16", "emulated")
    native_loss, native = _loss_and_gradients("bf16", "native")
    fp32_loss, fp32 = _loss_and_gradients("fp32", None)
    assert abs(emulated_loss - native_loss) < abs(emulated_loss - fp32_loss) / 10
    assert (emulated - native).norm() < (emulated - fp32).norm() / 5
    assert (emulated - fp32).norm() < 0.05 * fp32.norm()  # and it is still the same training step


@pytest.mark.parametrize("device, precision", [("cpu", "fp32"), ("cuda", "bf16")])
def test_products_are_left_alone_where_nothing_is_emulated(device, precision):
    with training_precision(device, precision, matmul=None if device == "cpu" else bf16_matmul(device)):
        assert _get_current_dispatch_mode() is None
    assert bf16_matmul("cuda") == "native"


_FAULTS = """
import resource
{imports}
import torch
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(2**26)  # 256 MiB
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(imports: str, env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", _FAULTS.format(imports=imports)], env=env, check=True,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    return int(out.stdout)


@pytest.mark.skipif(not Path("/sys/kernel/mm/transparent_hugepage/enabled").is_file()
                    or "[madvise]" not in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text(),
                    reason="needs transparent huge pages on request (madvise)")
def test_importing_the_benchmark_puts_large_tensors_on_huge_pages():
    plain = _page_faults("", {})
    with_benchmark = _page_faults("import benchmark", {})
    assert with_benchmark < plain / 4  # 2 MiB pages instead of 4 KiB ones (65,536 faults)
    assert _page_faults("import benchmark", {"THP_MEM_ALLOC_ENABLE": "0"}) > plain / 2  # the user's setting wins
