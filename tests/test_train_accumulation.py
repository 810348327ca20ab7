"""Gradient accumulation: a step over grad_accum micro-batches trains like one batch holding them all."""

import copy

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState

from train.config import SFTConfig
from train.sft import Run, train_step

SHORT, LONG = "The red square.", "The red square at [0.10, 0.20, 0.40, 0.60], sounding twice over the clip."


def _item(model, answer, image, tone, box):
    turns = [{"role": "user", "content": "<image>\n<audio>\nWhich object makes this sound?"},
             {"role": "assistant", "content": answer}]
    return model.processor.encode(turns, image=image, audio=tone, box=box)


def _batch(model, items):
    return model.processor.collate(items) | {"skipped": torch.tensor(0), "cut": torch.tensor(0)}


def _step(model, batches, grad_accum, schedule=lambda step: 1.0):
    """One train_step of an SGD(lr=1) run on `batches`: the parameter change is minus the step's gradient."""
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=grad_accum)
    model = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    prepared, optimizer = accelerator.prepare(model, optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    run = Run(accelerator, prepared, model, optimizer, scheduler, iter(batches), None)
    entry = train_step(SFTConfig(grad_accum=grad_accum, max_grad_norm=1e9), run)
    return entry, {n: p.detach() - before[n] for n, p in model.named_parameters() if p.requires_grad}


def test_two_micro_batches_with_unequal_answers_train_like_one_batch_of_all_four(tiny_model, image, tone):
    model = copy.deepcopy(tiny_model).train()
    # the first micro-batch has far fewer answer tokens than the second: a mean of the two micro-batch
    # means would weigh its tokens more than the second's
    items = [_item(model, SHORT, image, tone, [0.1, 0.2, 0.4, 0.6]), _item(model, SHORT, image, tone, None),
             _item(model, LONG, image, tone, [0.1, 0.2, 0.4, 0.6]), _item(model, LONG, image, tone, [0.5, 0.5, 0.9, 0.9])]
    whole, whole_change = _step(model, [_batch(model, items)], grad_accum=1)
    parts, parts_change = _step(model, [_batch(model, items[:2]), _batch(model, items[2:])], grad_accum=2)
    for part in ("loss", "lm_loss", "ot_loss", "ac_loss"):
        assert parts[part] == pytest.approx(whole[part], rel=1e-4), part
    assert parts["grad_norm"] == pytest.approx(whole["grad_norm"], rel=1e-4)
    for name, change in whole_change.items():
        torch.testing.assert_close(parts_change[name], change, rtol=1e-4, atol=1e-7, msg=name)


def test_the_logged_learning_rate_is_the_one_the_step_trained_with(tiny_model, image, tone):
    model = copy.deepcopy(tiny_model).train()
    batch = _batch(model, [_item(model, SHORT, image, tone, None), _item(model, LONG, image, tone, None)])
    plain, plain_change = _step(model, [dict(batch)], grad_accum=1)
    # the step trains at the schedule's value for step 0 (0.5), not the next step's (0.25)
    halved, halved_change = _step(model, [dict(batch)], grad_accum=1, schedule=lambda step: 0.5 ** (step + 1))
    assert halved["projector_lr"] == 0.5 and plain["projector_lr"] == 1.0
    for name, change in plain_change.items():
        torch.testing.assert_close(halved_change[name], change / 2, rtol=1e-4, atol=1e-7, msg=name)
