"""The figures the GPU benches divide by, pinned to the issues' reference numbers."""

import pytest

from bench.gpus import bandwidth, bandwidth_limit, peak_flops, useful_mfu

LLAMA2_7B_PARAMETERS = 6_738_415_616


def test_useful_mfu_of_issue_9s_reference_step_on_an_h100():
    # transformers + peft, batch 4 x 1024 on one H100: 13,392 tokens/s = 36.5 % useful MFU
    assert useful_mfu(LLAMA2_7B_PARAMETERS, 13_392, peak_flops("NVIDIA H100 80GB HBM3")) == pytest.approx(0.3650, abs=5e-5)


def test_batch_one_bandwidth_limit_of_a_7b_model_in_bf16():
    # issue 6: ≈ 249 tokens/s on an H100; RESULTS.md's H200 line: 356
    assert bandwidth_limit(LLAMA2_7B_PARAMETERS, 2, bandwidth("NVIDIA H100 80GB HBM3")) == pytest.approx(248.6, abs=0.05)
    assert bandwidth_limit(LLAMA2_7B_PARAMETERS, 2, bandwidth("NVIDIA H200")) == pytest.approx(356.2, abs=0.05)


@pytest.mark.parametrize("name", ["NVIDIA GH200 480GB", "NVIDIA H100", "Tesla V100-SXM2-16GB", "CPU"])
def test_a_gpu_not_listed_by_its_full_name_gets_no_figure(name):
    # a substring match gave "GH200" the H200's bandwidth and PCIe/NVL parts the SXM peak
    assert peak_flops(name) is None and bandwidth(name) is None


def test_pcie_and_nvl_parts_have_their_own_figures():
    assert peak_flops("NVIDIA H100 PCIe") < peak_flops("NVIDIA H100 NVL") < peak_flops("NVIDIA H100 80GB HBM3")
    assert bandwidth("NVIDIA H100 PCIe") < bandwidth("NVIDIA H100 80GB HBM3") < bandwidth("NVIDIA H200")
