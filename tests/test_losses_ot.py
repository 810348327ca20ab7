import numpy as np
import ot
import pytest
import torch

from meerkat.losses.ot import _PROXIMAL_FIXED, avopt_loss, cosine_cost, transport_plan


def _tokens(seed: int, b: int = 3, ni: int = 7, na: int = 5, d: int = 6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, ni, d, generator=g), torch.randn(b, na, d, generator=g)


def test_cosine_cost_matches_direct_formula():
    image = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    audio = torch.tensor([[[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]])
    expected = torch.tensor([[[0.0, 1 - 2**-0.5, 2.0], [1.0, 1 - 2**-0.5, 1.0]]])
    assert torch.allclose(cosine_cost(image, audio), expected, atol=1e-6)


def test_sinkhorn_loss_equals_pot_sinkhorn2_per_sample():
    image, audio = _tokens(0)
    loss = avopt_loss(image, audio, solver="sinkhorn", reg=0.05, iters=2000)
    cost = cosine_cost(image, audio).double().numpy()
    per_sample = [
        ot.sinkhorn2(np.full(7, 1 / 7), np.full(5, 1 / 5), c, 0.05, method="sinkhorn_log", numItermax=2000, stopThr=1e-12)
        for c in cost
    ]
    assert loss.item() == pytest.approx(float(np.mean(per_sample)), rel=1e-5)


def test_default_sinkhorn_is_within_two_percent_of_exact_ot():
    image, audio = _tokens(1, b=2, ni=49, na=16, d=32)
    loss = avopt_loss(image, audio)
    exact = np.mean([ot.emd2(np.full(49, 1 / 49), np.full(16, 1 / 16), c) for c in cosine_cost(image, audio).double().numpy()])
    assert loss.item() == pytest.approx(exact, rel=0.02)


def test_batched_plan_equals_per_sample_plans():
    image, audio = _tokens(2)
    cost = cosine_cost(image, audio)
    batched = transport_plan(cost)
    for i in range(cost.shape[0]):
        assert torch.allclose(batched[i], transport_plan(cost[i : i + 1])[0], atol=1e-5)
    assert torch.allclose(batched.sum(2), torch.full((3, 7), 1 / 7), atol=1e-5)  # uniform marginals
    assert torch.allclose(batched.sum(1), torch.full((3, 5), 1 / 5), atol=1e-5)


def test_loss_drops_when_audio_moves_towards_image():
    image, audio = _tokens(3)
    before = avopt_loss(image, audio)
    after = avopt_loss(image, 0.5 * audio + 0.5 * image[:, :5])
    assert after < before - 0.05


def test_plan_is_constant_and_gradient_follows_the_cost():
    image, audio = _tokens(4)
    audio.requires_grad_(True)
    avopt_loss(image, audio).backward()
    plan = transport_plan(cosine_cost(image, audio))
    cost = cosine_cost(image, audio)
    (expected,) = torch.autograd.grad((plan * cost).sum((1, 2)).mean(), audio)
    assert torch.allclose(audio.grad, expected, atol=1e-6)


def test_proximal_solver_matches_exact_ot_or_is_refused_on_buggy_pot():
    image, audio = _tokens(5)
    if not _PROXIMAL_FIXED:
        with pytest.raises(ValueError, match="PythonOT/POT#842"):
            avopt_loss(image, audio, solver="proximal")
        return
    loss = avopt_loss(image, audio, solver="proximal", beta=0.5, iters=200)
    exact = np.mean([ot.emd2(np.full(7, 1 / 7), np.full(5, 1 / 5), c) for c in cosine_cost(image, audio).double().numpy()])
    assert loss.item() == pytest.approx(exact, rel=0.01)


def test_unknown_solver_is_a_clear_error():
    image, audio = _tokens(6)
    with pytest.raises(ValueError, match="unknown OT solver 'emd'"):
        avopt_loss(image, audio, solver="emd")


def test_pot_is_imported_without_the_array_libraries_that_reserve_gpu_memory():
    import subprocess
    import sys

    code = ("import os; os.environ['POT_BACKEND_DISABLE_CUPY'] = ''; import meerkat.losses.ot, ot.backend as b; "
            "print(os.environ['POT_BACKEND_DISABLE_JAX'], os.environ['POT_BACKEND_DISABLE_TENSORFLOW'], "
            "repr(os.environ['POT_BACKEND_DISABLE_CUPY']), b.jax is False)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "1", "''", "True"]  # JAX and TensorFlow off; a user's own setting is kept


def test_cost_and_loss_stay_float32_under_bf16_autocast():
    # from a bf16 cost Sinkhorn never meets its tolerance: every step would run all 1000 iterations
    image, audio = _tokens(3, b=2, ni=49, na=16, d=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cost = cosine_cost(image, audio)
        loss = avopt_loss(image, audio)
    assert cost.dtype == torch.float32
    assert torch.allclose(cost, cosine_cost(image, audio), atol=1e-6)
    assert loss.item() == pytest.approx(avopt_loss(image, audio).item(), rel=1e-6)
