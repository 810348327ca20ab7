import pytest
import torch

from meerkat.losses.ac import audio_to_image_attention, avace_loss, box_to_patch_mask


def test_box_on_patch_edges_covers_whole_patches():
    mask = box_to_patch_mask(torch.tensor([[0.25, 0.5, 0.75, 1.0]]), grid=4).view(4, 4)
    expected = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0]], dtype=torch.float32)
    assert torch.equal(mask, expected)


def test_box_that_cuts_patches_gives_fractional_coverage():
    # grid 2: patches are 0.5 wide. x in [0.25, 0.5] covers half of column 0; y in [0, 0.75] covers
    # all of row 0 and half of row 1.
    mask = box_to_patch_mask(torch.tensor([[0.25, 0.0, 0.5, 0.75]]), grid=2).view(2, 2)
    assert torch.allclose(mask, torch.tensor([[0.5, 0.0], [0.25, 0.0]]))
    # The covered area, in patch units, equals the box area times the number of patches.
    assert mask.sum().item() == pytest.approx(0.25 * 0.75 * 4)


@pytest.mark.parametrize("grid", [7, 14, 16])
def test_a_whole_image_box_covers_every_patch_exactly_so_nothing_is_outside(grid):
    mask = box_to_patch_mask(torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.3, 0.0, 1.0, 1.0]]), grid=grid)
    assert torch.equal(mask[0], torch.ones(grid * grid))  # 1/14 in image units summed back to 1.0000007 before
    assert ((mask >= 0) & (mask <= 1)).all()
    assert mask[1].sum().item() == pytest.approx(0.7 * grid * grid, rel=1e-5)
    torch.manual_seed(1)
    attention = torch.softmax(torch.randn(1, 4, grid * grid), dim=-1)
    heat = attention.mean(1)
    exact = 0.5 * (1 - (heat / heat.max()).mean())  # nothing outside: only the "inside" half is left
    assert avace_loss(attention, mask[:1]).item() == pytest.approx(exact.item(), rel=1e-5)


def test_invalid_boxes_are_rejected_with_the_values():
    with pytest.raises(ValueError, match=r"0 <= x1 < x2 <= 1.*1\.5"):
        box_to_patch_mask(torch.tensor([[0.1, 0.1, 1.5, 0.5]]), grid=4)
    with pytest.raises(ValueError, match="0 <= x1 < x2"):
        box_to_patch_mask(torch.tensor([[0.6, 0.1, 0.2, 0.5]]), grid=4)
    with pytest.raises(ValueError, match="without area covers no patch"):  # its loss would ignore where it is
        box_to_patch_mask(torch.tensor([[0.3, 0.2, 0.3, 0.8]]), grid=4)


def _attention_on(patches: list[int], n: int = 16) -> torch.Tensor:
    attention = torch.zeros(1, 3, n)
    attention[:, :, patches] = 1.0 / len(patches)
    return attention


def test_loss_is_lower_inside_the_box_than_outside():
    mask = box_to_patch_mask(torch.tensor([[0.0, 0.0, 0.5, 0.5]]), grid=4)  # patches 0, 1, 4, 5
    inside = avace_loss(_attention_on([0, 1, 4, 5]), mask)
    outside = avace_loss(_attention_on([10, 11, 14, 15]), mask)
    assert inside.item() == pytest.approx(0.0)
    assert outside.item() == pytest.approx(0.5 * 4 / 12 + 0.5)  # heat 1 on 4 of the 12 outside patches, none inside
    half = avace_loss(_attention_on([0, 15]), mask)  # one patch inside, one outside
    assert 0.0 < half.item() < 1.0


def test_attention_is_normalised_over_patches_and_follows_similarity():
    image = torch.eye(4).unsqueeze(0)  # 4 orthogonal patches
    audio = torch.tensor([[[0.0, 0.0, 5.0, 0.0]]])  # points at patch 2
    attention = audio_to_image_attention(audio, image, temperature=0.1)
    assert attention.shape == (1, 1, 4)
    assert attention.sum(-1).item() == pytest.approx(1.0)
    assert attention.argmax().item() == 2


def test_gradient_moves_attention_into_the_box():
    torch.manual_seed(0)
    image = torch.randn(1, 16, 8)
    audio = torch.randn(1, 4, 8, requires_grad=True)
    mask = box_to_patch_mask(torch.tensor([[0.5, 0.5, 1.0, 1.0]]), grid=4)
    optimizer = torch.optim.SGD([audio], lr=0.5)
    first = avace_loss(audio_to_image_attention(audio, image), mask).item()
    for _ in range(50):
        optimizer.zero_grad()
        avace_loss(audio_to_image_attention(audio, image), mask).backward()
        optimizer.step()
    assert avace_loss(audio_to_image_attention(audio, image), mask).item() < first - 0.2


def test_attention_stays_float32_under_bf16_autocast():
    torch.manual_seed(1)
    image, audio = torch.randn(2, 49, 32), torch.randn(2, 16, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        attention = audio_to_image_attention(audio, image)
    assert attention.dtype == torch.float32
    assert torch.allclose(attention, audio_to_image_attention(audio, image), atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_an_all_zero_audio_token_gets_a_bounded_gradient_from_both_losses(dtype):
    from meerkat.losses.ot import avopt_loss
    torch.manual_seed(0)
    patches = torch.randn(1, 16, 8)
    sounds = torch.cat([torch.zeros(1, 1, 8), torch.randn(1, 3, 8)], 1).to(dtype).requires_grad_()
    mask = box_to_patch_mask(torch.tensor([[0.0, 0.0, 0.5, 0.5]]), grid=4)
    loss = avace_loss(audio_to_image_attention(sounds, patches.to(dtype)), mask) + avopt_loss(patches, sounds.float())
    grad, = torch.autograd.grad(loss, sounds)
    assert torch.isfinite(grad).all()
    assert grad[0, 0].float().norm() < 1e4  # ~1e11 with torch's 1e-12 norm floor, inf in float16
