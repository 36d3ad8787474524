"""fkd, fitnet, at, ad and mfd on tiny models; option validation through the registry."""

import pytest
import torch
import torch.nn.functional as F
from tiny_models import TinyConv, context_for, make_batch, mlp, teacher_output

from kdfair.errors import ConfigError
from kdfair.losses.mmd import mfd_mmd
from kdfair.methods.base import TeacherOutput
from kdfair.methods.registry import METHODS, build_method, parse_method_options

NEW_METHODS = ["fkd", "fitnet", "at", "ad", "mfd", "bird", "bird_no_meta"]


def conv_setup(name: str, options: dict | None = None, **context):
    torch.manual_seed(0)
    student, teacher = TinyConv((4, 6)).double(), TinyConv((5, 8)).double()
    ctx = context_for(student, teacher_feature_dim=8, teacher_map_channels=(5, 8), **context)
    method = build_method(name, options or {}, ctx).double()
    if hasattr(method, "start_epoch"):
        method.start_epoch(0)
    batch = make_batch(12, in_shape=(3, 8, 8))
    with torch.no_grad():
        out = teacher.forward_all(batch.inputs)
    return student, method, batch, TeacherOutput(out.logits, out.features, out.maps)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("fkd", {}),
        ("fitnet", {"kd_weight": 0.5}),
        ("fitnet", {"hint": "features"}),
        ("at", {"kd_weight": 0.5}),
        ("ad", {"adversary_steps": 2, "kd_weight": 0.5}),
        ("mfd", {"kd_weight": 1.0}),
        ("bird", {"warmup_epochs": 0}),
        ("bird_no_meta", {}),
    ],
)
def test_steps_reduce_loss_with_finite_parts(name: str, options: dict) -> None:
    student, method, batch, teacher = conv_setup(name, options)
    params = list(student.parameters()) + [
        p for p in method.parameters() if all(p is not q for q in method.own_parameters())
    ]
    optimizer = torch.optim.SGD(params, lr=0.05)
    losses = []
    for _ in range(12):
        method.before_step(student, batch, teacher, lambda: (batch, teacher))
        optimizer.zero_grad()
        parts = method.loss(student, batch, teacher)
        assert all(torch.isfinite(v).all() for v in parts.values()), parts
        parts["loss"].backward()
        optimizer.step()
        losses.append(parts["loss"].item())
    assert losses[-1] < losses[0]


def test_every_new_method_is_registered_and_validates_options() -> None:
    assert set(NEW_METHODS) <= set(METHODS)
    for name in NEW_METHODS:
        with pytest.raises(ConfigError, match=rf"^method '{name}' option 'no_such_key': ") as info:
            parse_method_options(name, {"no_such_key": 1})
        assert "\n" not in str(info.value)
    bad = {
        "fkd": {"alpha": 2},
        "fitnet": {"hint": "logits"},
        "at": {"beta": -1},
        "ad": {"adversary_steps": 0},
        "mfd": {"sigma": 0},
        "bird": {"phi_lr": 0},
        "bird_no_meta": {"virtual_bn": "none"},
    }
    for name, raw in bad.items():
        key = next(iter(raw))
        with pytest.raises(ConfigError, match=rf"^method '{name}' option '{key}': [^\n]+$"):
            parse_method_options(name, raw)


def test_unknown_attribute_and_missing_map_channels_are_config_errors() -> None:
    student = mlp()
    with pytest.raises(ConfigError, match="option 'attribute': unknown attribute 'race'; valid: sex, age"):
        build_method("mfd", {"attribute": "race"}, context_for(student))
    with pytest.raises(ConfigError, match="needs a protected attribute"):
        build_method("ad", {}, context_for(student, attribute_levels={}))
    with pytest.raises(ConfigError, match="option 'hint'"):
        build_method("fitnet", {"hint": "maps"}, context_for(student))
    with pytest.raises(ConfigError, match="option 'student_layer'"):
        build_method("fitnet", {"student_layer": 5}, context_for(TinyConv(), teacher_map_channels=(5, 8)))


def test_fkd_loss_value_and_projector() -> None:
    student = mlp()
    method = build_method("fkd", {"alpha": 0.6}, context_for(student, teacher_feature_dim=7)).double()
    batch = make_batch(9)
    teacher = teacher_output(batch, 7)
    parts = method.loss(student, batch, teacher)
    out = student.forward_all(batch.inputs)
    feature = F.mse_loss(method.projector(out.features), teacher.features)
    torch.testing.assert_close(parts["loss"], 0.6 * feature + 0.4 * F.cross_entropy(out.logits, batch.labels))
    assert not method.needs_teacher_logits and method.needs_teacher_features


def test_fitnet_auto_uses_maps_for_live_teachers_and_features_otherwise() -> None:
    _, live, _, _ = conv_setup("fitnet")
    assert live.on_maps and live.needs_teacher_maps and live.regressor.body[0].weight.shape == (8, 6, 1, 1)
    black_box = build_method("fitnet", {}, context_for(mlp(), teacher_feature_dim=7))
    assert not black_box.on_maps and not black_box.needs_teacher_maps and not black_box.needs_teacher_logits


def test_at_loss_equals_definition_on_default_pairs() -> None:
    student, method, batch, teacher = conv_setup("at", {"beta": 10.0})
    out = student.forward_all(batch.inputs)

    def att(m: torch.Tensor) -> torch.Tensor:
        return F.normalize(m.pow(2).mean(1).flatten(1), dim=1)

    expected = (
        10.0 / 2 * sum((att(s) - att(t)).pow(2).mean() for s, t in zip(out.maps, teacher.maps, strict=True))
    )
    parts = method.loss(student, batch, teacher)
    torch.testing.assert_close(parts["attention"], expected)
    torch.testing.assert_close(parts["loss"], F.cross_entropy(out.logits, batch.labels) + expected)
    with pytest.raises(ValueError, match="stage maps"):
        method.loss(student, batch, TeacherOutput(teacher.logits, teacher.features, None))


def test_mfd_loss_combines_ce_kd_and_mmd() -> None:
    student = mlp()
    method = build_method(
        "mfd",
        {"mmd_weight": 3.0, "kd_weight": 0.5, "attribute": "age"},
        context_for(student, teacher_feature_dim=4),
    ).double()
    batch = make_batch(12)
    teacher = teacher_output(batch, 4)
    parts = method.loss(student, batch, teacher)
    out = student.forward_all(batch.inputs)
    mmd = mfd_mmd(out.features, teacher.features, batch.labels, batch.attributes["age"])
    t = 4.0  # the run's temperature (context) overrides MFD's default 3
    kd = (
        t
        * t
        * F.kl_div(F.log_softmax(out.logits / t, 1), F.softmax(teacher.logits / t, 1), reduction="batchmean")
    )
    torch.testing.assert_close(
        parts["loss"], F.cross_entropy(out.logits, batch.labels) + 0.5 * kd + 1.5 * mmd
    )


def test_ad_student_gets_reversed_adversary_gradient_and_adversary_learns() -> None:
    student = mlp()
    method = build_method("ad", {"reversal_scale": 0.7, "adversary_lr": 0.05}, context_for(student)).double()
    batch = make_batch(12)
    assert [id(p) for p in method.own_parameters()] == [id(p) for p in method.adversary.parameters()]
    # student gradient of the loss = CE gradient - 0.7 x gradient of the adversary's CE
    parts = method.loss(student, batch, None)
    weight = student.fc.weight
    body = student.body[0].weight
    got = torch.autograd.grad(parts["loss"], [body])[0]
    out = student.forward_all(batch.inputs)
    ce_grad = torch.autograd.grad(F.cross_entropy(out.logits, batch.labels), [body], retain_graph=True)[0]
    adv_grad = torch.autograd.grad(
        F.cross_entropy(method.adversary(out.features), batch.attributes["sex"]), [body]
    )[0]
    torch.testing.assert_close(got, ce_grad - 0.7 * adv_grad)
    assert weight.grad is None and all(p.grad is None for p in method.adversary.parameters())
    before = [float(method.before_step(student, batch, None, None)["adversary_ce"]) for _ in range(30)]
    assert before[-1] < before[0]  # the adversary learns to predict the group from fixed features
    state = {k: v.clone() for k, v in student.state_dict().items()}
    method.before_step(student, batch, None, None)
    for key, value in student.state_dict().items():
        torch.testing.assert_close(value, state[key])  # BatchNorm buffers untouched by the adversary's steps
