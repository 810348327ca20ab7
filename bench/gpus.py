"""What the benches measure against: each GPU's dense bf16 tensor-core peak and memory bandwidth.

Keyed by the full `torch.cuda.get_device_name()`: a substring match gave the SXM figures to PCIe and NVL
parts (and "GH200" matched "H200"). A GPU not listed prints "n/a" instead of a wrong figure. Figures are
NVIDIA's datasheet values (dense, without sparsity).
"""

from __future__ import annotations

GPUS = {  # name → (bf16 dense FLOP/s, memory bytes/s)
    "NVIDIA H100 80GB HBM3": (989e12, 3.35e12),  # SXM
    "NVIDIA H100 PCIe": (756e12, 2.0e12),
    "NVIDIA H100 NVL": (835e12, 3.9e12),
    "NVIDIA H200": (989e12, 4.8e12),  # SXM
    "NVIDIA H200 NVL": (835e12, 4.8e12),
    "NVIDIA A100-SXM4-80GB": (312e12, 2.039e12),
    "NVIDIA A100-SXM4-40GB": (312e12, 1.555e12),
}


def peak_flops(name: str) -> float | None:
    return GPUS.get(name, (None, None))[0]


def bandwidth(name: str) -> float | None:
    return GPUS.get(name, (None, None))[1]


def useful_mfu(n_params: int, tokens_per_s: float, peak: float) -> float:
    """Issue 9's measure: 4·N FLOPs per token (forward, backward through the activations, the LoRA
    weights' share ignored) against the peak."""
    return 4 * n_params * tokens_per_s / peak


def bandwidth_limit(n_params: int, bytes_per_param: int, bytes_per_s: float) -> float:
    """Batch-1 decode tokens/s if every weight is read once per token and nothing else costs."""
    return bytes_per_s / (n_params * bytes_per_param)
