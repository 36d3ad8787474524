"""BIRD (seeds/004): exact meta-gradient vs finite differences, the ablation, warm-up and stage 3."""

import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_models import context_for, make_batch, mlp, teacher_output

from kdfair.losses.fairness import FAIRNESS_TERMS, class_group_ce_gap
from kdfair.methods.registry import build_method

TEACHER_WIDTH = 5  # != the student's 4: the learned projector is in play
PAPER = {"fairness_term": "paper", "meta_objective": "fairness"}  # Eqn. 3 and Algorithm 1 exactly


def build(name: str = "bird", **options):
    student = mlp()
    method = build_method(name, {"warmup_epochs": 0, **options}, context_for(student, teacher_feature_dim=5))
    method.double()
    with torch.no_grad():
        method.phi.copy_(torch.linspace(-1.0, 2.0, TEACHER_WIDTH, dtype=torch.float64))
    return student, method


def reference_outer_loss(method, student, batch, h_teacher, meta_batch, phi: torch.Tensor) -> float:
    """Independent route: deep-copy the student, take the SGD step on L_in in place, evaluate the meta
    objective on meta: L_o (paper) or (1 - alpha) CE + lambda L_o (task_and_fairness), the method's L_o."""
    virtual = copy.deepcopy(student)
    if method.options.virtual_bn == "running":  # BatchNorm uses running statistics, else each batch's
        virtual.eval()
    out = virtual.forward_all(batch.inputs)
    target = torch.sigmoid(phi) * h_teacher
    l_in = method.alpha * F.mse_loss(method.projector(out.features), target) + (
        1 - method.alpha
    ) * F.cross_entropy(out.logits, batch.labels)
    params = list(virtual.parameters())
    grads = torch.autograd.grad(l_in, params)
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            p -= method.inner_lr * g
        logits = virtual(meta_batch.inputs)
        term = FAIRNESS_TERMS[method.options.fairness_term]
        fairness = class_group_ce_gap(logits, meta_batch.labels, meta_batch.attributes["sex"], 2, term).item()
        if method.options.meta_objective == "fairness":
            return fairness
        ce = F.cross_entropy(logits, meta_batch.labels).item()
        return (1 - method.alpha) * ce + method.options.fairness_weight * fairness


@pytest.mark.parametrize(
    "options", [PAPER, {}, {"virtual_bn": "batch"}], ids=["paper", "defaults", "batch_statistics"]
)
def test_phi_gradient_matches_finite_differences(options: dict) -> None:
    student, method = build(inner_lr=0.5, **options)
    student.train()
    batch, meta_batch = make_batch(12, seed=0), make_batch(12, seed=3)
    teacher = teacher_output(batch, TEACHER_WIDTH)
    outer, grad = method.meta_gradient(student, batch, teacher, meta_batch)
    phi = method.phi.detach().clone()
    assert outer.item() == pytest.approx(
        reference_outer_loss(method, student, batch, teacher.features, meta_batch, phi), rel=1e-12
    )
    eps = 1e-6
    numeric = torch.zeros_like(phi)
    for i in range(len(phi)):
        step = torch.zeros_like(phi)
        step[i] = eps
        plus = reference_outer_loss(method, student, batch, teacher.features, meta_batch, phi + step)
        minus = reference_outer_loss(method, student, batch, teacher.features, meta_batch, phi - step)
        numeric[i] = (plus - minus) / (2 * eps)
    assert grad.abs().max() > 1e-6  # the test is not trivially 0 == 0
    torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-9)


def test_meta_step_leaves_student_untouched_and_moves_phi_by_adam() -> None:
    student, method = build(phi_lr=1e-2)
    batch, meta_batch = make_batch(12, seed=0), make_batch(12, seed=3)
    teacher = teacher_output(batch, TEACHER_WIDTH)
    state = copy.deepcopy(student.state_dict())
    phi = method.phi.detach().clone()
    _, grad = method.meta_gradient(student, batch, teacher, meta_batch)
    logged = method.before_step(student, batch, teacher, lambda: (meta_batch, teacher_output(meta_batch, 5)))
    assert set(logged) == {"meta_objective", "gate_mean", "meta_skipped"}
    assert all(torch.is_tensor(v) and v.dim() == 0 for v in logged.values())  # stay on the device: no sync
    assert float(logged["meta_skipped"]) == 0.0
    for key, value in student.state_dict().items():
        torch.testing.assert_close(value, state[key])  # parameters and BatchNorm buffers unchanged
    assert all(p.grad is None for p in student.parameters())
    assert student.training
    # Adam's first step is lr * g / (|g| + eps) ~= lr * sign(g)
    torch.testing.assert_close(method.phi.detach(), phi - 1e-2 * grad / (grad.abs() + 1e-8))


def test_no_meta_ablation_leaves_phi_unchanged() -> None:
    student, method = build("bird_no_meta")
    phi = method.phi.detach().clone()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    for seed in range(3):
        batch = make_batch(12, seed=seed)
        teacher = teacher_output(batch, TEACHER_WIDTH)
        assert method.before_step(student, batch, teacher, lambda b=batch, t=teacher: (b, t)) == {}
        optimizer.zero_grad()
        method.loss(student, batch, teacher)["loss"].backward()
        optimizer.step()
    torch.testing.assert_close(method.phi.detach(), phi)
    assert method.uses_meta_split and [id(p) for p in method.own_parameters()] == [id(method.phi)]


@pytest.mark.parametrize("term", ["paper", "shrunk_huber"])
def test_stage_three_loss_parts(term: str) -> None:
    student, method = build(fairness_weight=0.2, alpha=0.7, fairness_term=term)
    batch = make_batch(12, seed=1)
    teacher = teacher_output(batch, TEACHER_WIDTH)
    parts = method.loss(student, batch, teacher)
    out = student.forward_all(batch.inputs)
    gate = torch.sigmoid(method.phi.detach())
    feature = F.mse_loss(method.projector(out.features), gate * teacher.features)
    ce = F.cross_entropy(out.logits, batch.labels)
    fairness = class_group_ce_gap(out.logits, batch.labels, batch.attributes["sex"], 2, FAIRNESS_TERMS[term])
    torch.testing.assert_close(parts["loss"], 0.7 * feature + 0.3 * ce + 0.2 * fairness)
    parts["loss"].backward()
    assert method.phi.grad is None  # phi is a constant in the student's loss


def test_warmup_is_plain_feature_kd_and_needs_start_epoch() -> None:
    student = mlp()
    method = build_method("bird", {"warmup_epochs": 2}, context_for(student, teacher_feature_dim=5)).double()
    batch = make_batch(12)
    teacher = teacher_output(batch, TEACHER_WIDTH)
    with pytest.raises(RuntimeError, match="start_epoch"):
        method.loss(student, batch, teacher)
    method.start_epoch(1)
    assert method.before_step(student, batch, teacher, None) == {}  # no meta step in warm-up
    parts = method.loss(student, batch, teacher)
    out = student.forward_all(batch.inputs)
    plain = 0.8 * F.mse_loss(method.projector(out.features), teacher.features) + 0.2 * F.cross_entropy(
        out.logits, batch.labels
    )  # alpha = the run's 0.8
    torch.testing.assert_close(parts["loss"], plain)
    method.start_epoch(2)
    assert "fairness" in method.loss(student, batch, teacher)
    with pytest.raises(ValueError, match="meta batch"):
        method.before_step(student, batch, teacher, None)


def test_training_steps_reduce_loss_and_state_round_trip() -> None:
    student, method = build(phi_lr=1e-2)
    optimizer = torch.optim.SGD(list(student.parameters()) + list(method.projector.parameters()), lr=0.1)
    batch, meta_batch = make_batch(24, seed=0), make_batch(12, seed=5)
    teacher = teacher_output(batch, TEACHER_WIDTH)
    losses = []
    for _ in range(15):
        method.before_step(student, batch, teacher, lambda: (meta_batch, teacher))
        optimizer.zero_grad()
        parts = method.loss(student, batch, teacher)
        assert all(torch.isfinite(v).all() for v in parts.values())
        parts["loss"].backward()
        optimizer.step()
        losses.append(parts["loss"].item())
    assert losses[-1] < losses[0]
    state = method.state_dict()
    _, fresh = build(phi_lr=1e-2)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.phi, method.phi)
    assert fresh.optimizer.state_dict()["state"][0]["step"] == 15


def test_inner_lr_follows_the_run_then_the_paper() -> None:
    from kdfair.methods.bird import PAPER_LEARNING_RATE

    student = mlp()
    ctx = context_for(student, teacher_feature_dim=5, learning_rate=0.05)
    assert build_method("bird", {}, ctx).inner_lr == 0.05  # the run's student lr
    assert build_method("bird", {"inner_lr": 0.3}, ctx).inner_lr == 0.3  # an explicit option wins
    bare = build_method("bird_no_meta", {}, context_for(student, teacher_feature_dim=5))
    assert bare.inner_lr == PAPER_LEARNING_RATE == 1e-3  # no lr in the context: the paper's Adam lr


def _gate_change(name: str, steps: int, **options: float) -> torch.Tensor:
    """Mean |sigmoid(phi_after) - sigmoid(phi_before)| after ``steps`` training steps from the defaults."""
    student = mlp()
    ctx = context_for(student, teacher_feature_dim=TEACHER_WIDTH, learning_rate=0.1)
    method = build_method(name, {"warmup_epochs": 0, **options}, ctx).double()
    before = method.gate().detach().clone()
    optimizer = torch.optim.SGD(list(student.parameters()) + list(method.projector.parameters()), lr=0.1)
    meta_batch = make_batch(12, seed=7)
    meta = teacher_output(meta_batch, TEACHER_WIDTH)
    for seed in range(steps):
        batch = make_batch(12, seed=seed)
        teacher = teacher_output(batch, TEACHER_WIDTH)
        method.before_step(student, batch, teacher, lambda: (meta_batch, meta))
        optimizer.zero_grad()
        method.loss(student, batch, teacher)["loss"].backward()
        optimizer.step()
    return (method.gate().detach() - before).abs().mean()


def test_default_gate_starts_at_half_and_moves_within_a_few_meta_steps() -> None:
    student = mlp()
    method = build_method("bird", {}, context_for(student, teacher_feature_dim=TEACHER_WIDTH))
    torch.testing.assert_close(method.gate().detach(), torch.full((TEACHER_WIDTH,), 0.5))
    assert method.options.phi_lr == 1e-2
    # 10 Adam steps of ~1e-2 on phi at the sigmoid's slope 0.25: the gate moves by up to ~0.025
    moved = _gate_change("bird", 10)
    assert moved > 5e-3, moved
    assert _gate_change("bird_no_meta", 10) == 0.0
    # the former defaults (phi_init 4, phi_lr 1e-3): slope 0.018, so 10 steps move the gate by < 2e-4
    assert _gate_change("bird", 10, phi_init=4.0, phi_lr=1e-3) < 2e-4 < moved / 25


def test_first_meta_step_is_a_full_adam_step_at_the_paper_inner_lr() -> None:
    """The meta-gradient scales with inner_lr; at the paper's 1e-3 it must still dwarf Adam's eps (1e-8)."""
    student = mlp()
    ctx = context_for(student, teacher_feature_dim=TEACHER_WIDTH, learning_rate=1e-3)
    method = build_method("bird", {"warmup_epochs": 0}, ctx).double()
    assert method.inner_lr == 1e-3
    batch, meta_batch = make_batch(12, seed=0), make_batch(12, seed=3)
    before = method.phi.detach().clone()
    method.before_step(student, batch, teacher_output(batch, TEACHER_WIDTH), lambda: (meta_batch, None))
    step = (method.phi.detach() - before).abs()
    assert step.max() <= method.options.phi_lr * (1 + 1e-9)
    assert step.mean() > 0.9 * method.options.phi_lr, step


def test_meta_step_does_not_read_the_meta_teacher_outputs() -> None:
    from kdfair.methods.base import Method, TeacherOutput

    assert Method.needs_meta_teacher is False
    batch, meta_batch = make_batch(12, seed=0), make_batch(12, seed=3)
    teacher = teacher_output(batch, TEACHER_WIDTH)
    phis = []
    for meta_teacher in (teacher_output(meta_batch, TEACHER_WIDTH), TeacherOutput()):
        student, method = build()
        assert method.needs_meta_teacher is False
        method.before_step(student, batch, teacher, lambda m=meta_teacher: (meta_batch, m))
        phis.append(method.phi.detach().clone())
    assert not torch.equal(phis[0], build()[1].phi.detach())  # phi moved
    torch.testing.assert_close(phis[0], phis[1], rtol=0, atol=0)  # an empty TeacherOutput changes nothing


def test_stepping_the_projector_virtually_would_not_change_the_meta_gradient() -> None:
    """L_o of the virtual student reads only its logits, which do not depend on P: the choice is moot."""
    from kdfair.methods.common import functional_forward_all

    student, method = build(inner_lr=0.5)
    assert method.projector.linear is not None  # widths 4 -> 5: a learned map
    batch, meta_batch = make_batch(12, seed=0), make_batch(12, seed=3)
    teacher = teacher_output(batch, TEACHER_WIDTH)
    _, grad = method.meta_gradient(student, batch, teacher, meta_batch)

    params = dict(student.named_parameters())
    projector = dict(method.projector.named_parameters())
    out = functional_forward_all(student, batch.inputs, params, use_running_stats=True)
    projected = torch.func.functional_call(method.projector, projector, (out.features,))
    target = method.gate() * teacher.features
    l_in = method.alpha * F.mse_loss(projected, target) + (1 - method.alpha) * F.cross_entropy(
        out.logits, batch.labels
    )
    every = {**{f"s.{k}": v for k, v in params.items()}, **{f"p.{k}": v for k, v in projector.items()}}
    grads = torch.autograd.grad(l_in, list(every.values()), create_graph=True)
    updated = {k: v - method.inner_lr * g for (k, v), g in zip(every.items(), grads, strict=True)}
    assert any(g.abs().max() > 0 for k, g in zip(every, grads, strict=True) if k.startswith("p."))
    student_updated = {k[2:]: v for k, v in updated.items() if k.startswith("s.")}
    meta_out = functional_forward_all(student, meta_batch.inputs, student_updated, use_running_stats=True)
    outer = method.meta_objective(meta_out.logits, meta_batch)
    (with_projector,) = torch.autograd.grad(outer, [method.phi])
    assert grad.abs().max() > 1e-6
    torch.testing.assert_close(grad, with_projector, rtol=1e-12, atol=0)


def test_fairness_weight_ramps_up_after_the_warm_up() -> None:
    student = mlp()
    options = {"warmup_epochs": 2, "fairness_weight": 0.2, "fairness_ramp_epochs": 4}
    method = build_method("bird", options, context_for(student, teacher_feature_dim=TEACHER_WIDTH))
    weights = []
    for epoch in range(8):
        method.start_epoch(epoch)
        weights.append(method.fairness_weight())
    # warm-up epochs 0-1 do not use lambda; then 1/4, 2/4, 3/4 and the full 0.2 from the 4th epoch after it
    assert weights[2:] == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2, 0.2])
    batch = make_batch(12)
    teacher = teacher_output(batch, TEACHER_WIDTH)
    method.double()
    method.start_epoch(3)
    parts = method.loss(student, batch, teacher)
    plain = parts["loss"] - 0.1 * parts["fairness"]
    torch.testing.assert_close(plain, method.alpha * parts["feature"] + (1 - method.alpha) * parts["ce"])


def test_meta_batches_are_concatenated_into_one_meta_objective() -> None:
    batch = make_batch(12, seed=0)
    teacher = teacher_output(batch, TEACHER_WIDTH)
    metas = [make_batch(12, seed=s) for s in (3, 4, 5)]
    from kdfair.methods.bird import concat_batches

    joined = concat_batches(metas)
    assert joined.inputs.shape[0] == 36 and joined.attributes["sex"].shape == (36,)
    student, method = build(meta_batches=3)
    phi = method.phi.detach().clone()
    outer, grad = method.meta_gradient(student, batch, teacher, joined)
    stream = iter(metas)
    logged = method.before_step(student, batch, teacher, lambda: (next(stream), teacher_output(batch, 5)))
    assert logged["meta_objective"] == pytest.approx(outer.item(), rel=1e-12)  # all three batches were read
    torch.testing.assert_close(method.phi.detach(), phi - 1e-2 * grad / (grad.abs() + 1e-8))


def test_task_and_fairness_meta_objective_value() -> None:
    student, method = build(fairness_weight=0.3, alpha=0.6)
    batch = make_batch(12, seed=2)
    logits = student(batch.inputs)
    fairness = class_group_ce_gap(
        logits, batch.labels, batch.attributes["sex"], 2, FAIRNESS_TERMS["shrunk_huber"]
    )
    expected = 0.4 * F.cross_entropy(logits, batch.labels) + 0.3 * fairness
    torch.testing.assert_close(method.meta_objective(logits, batch), expected)
    _, paper = build(**PAPER)
    torch.testing.assert_close(
        paper.meta_objective(logits, batch),
        class_group_ce_gap(logits, batch.labels, batch.attributes["sex"], 2),
    )


def test_virtual_step_with_batch_statistics_keeps_the_running_ones() -> None:
    """``virtual_bn: batch``: the virtual step normalises with each batch's statistics (another meta
    objective than with the running ones) and leaves the student's running statistics as they were."""
    batch, meta_batch = make_batch(12, seed=0), make_batch(12, seed=3)
    teacher = teacher_output(batch, TEACHER_WIDTH)
    outers = {}
    for mode in ("running", "batch"):
        student, method = build(virtual_bn=mode)
        buffers = copy.deepcopy(dict(student.named_buffers()))
        outers[mode], _ = method.meta_gradient(student, batch, teacher, meta_batch)
        assert all(torch.equal(v, buffers[k]) for k, v in student.named_buffers())
    assert abs(float(outers["batch"]) - float(outers["running"])) > 1e-6


def test_non_finite_meta_gradient_skips_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """A diverged virtual step (non-finite meta-gradient) leaves phi and its Adam state exactly as they
    were, logged as ``meta_skipped`` 1, decided on the device (a tensor, no host read)."""
    student, method = build(phi_lr=1e-2)
    fresh = copy.deepcopy(method)
    batch, meta_batch = make_batch(12, seed=0), make_batch(12, seed=3)
    teacher = teacher_output(batch, TEACHER_WIDTH)

    def meta() -> tuple:
        return meta_batch, teacher

    def diverged(*args: object) -> tuple[torch.Tensor, torch.Tensor]:
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        return nan, torch.full_like(method.phi, float("nan")).index_fill(0, torch.tensor([0]), 1.0).detach()

    with monkeypatch.context() as patch:  # a skip as the very first step: the state stays a fresh one
        patch.setattr(method, "meta_gradient", diverged)
        logged = method.before_step(student, batch, teacher, meta)
    assert torch.is_tensor(logged["meta_skipped"]) and float(logged["meta_skipped"]) == 1.0
    assert torch.equal(method.phi, fresh.phi) and method.phi.grad is None
    for one in (method, fresh):  # the next step is the first step of a fresh optimizer
        assert float(one.before_step(student, batch, teacher, meta)["meta_skipped"]) == 0.0
    assert torch.equal(method.phi, fresh.phi) and not torch.equal(method.phi, build()[1].phi)
    _assert_same_state(method.optimizer.state_dict(), fresh.optimizer.state_dict())

    before_phi, before_state = method.phi.detach().clone(), copy.deepcopy(method.optimizer.state_dict())
    with monkeypatch.context() as patch:  # a skip after steps: phi and Adam's moments and count kept
        patch.setattr(method, "meta_gradient", diverged)
        method.before_step(student, batch, teacher, meta)
    assert torch.equal(method.phi, before_phi)
    _assert_same_state(method.optimizer.state_dict(), before_state)


def _assert_same_state(got: dict, expected: dict) -> None:
    assert got["state"].keys() == expected["state"].keys()
    for key, values in expected["state"].items():
        for name, value in values.items():
            assert torch.equal(torch.as_tensor(got["state"][key][name]), torch.as_tensor(value)), name
