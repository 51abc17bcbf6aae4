"""Contract for surrogate gradients (parametrised over ``SURROGATES``).

The expected pseudo-derivatives are written out again here from the table in the
docstring of :mod:`spikekws.neurons.surrogate`, with plain ``math`` on Python floats.
"""
from __future__ import annotations

import inspect
import math

import pytest
import torch

from spikekws.neurons import SURROGATES, Surrogate, get_surrogate
from spikekws.neurons import surrogate as surrogate_module


def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


# name -> (documented defaults, g(x, **params))
DOCUMENTED = {
    "boxcar": ({"width": 1.0, "scale": 1.0},
               lambda x, width, scale: scale * (1.0 if abs(x) <= width / 2 else 0.0)),
    "fast_sigmoid": ({"slope": 10.0}, lambda x, slope: 1.0 / (1.0 + slope * abs(x)) ** 2),
    "sigmoid": ({"slope": 5.0},
                lambda x, slope: slope * _sig(slope * x) * (1.0 - _sig(slope * x))),
    "atan": ({"alpha": 2.0},
             lambda x, alpha: (alpha / 2) / (1.0 + (math.pi / 2 * alpha * x) ** 2)),
    "triangle": ({"width": 1.0}, lambda x, width: max(0.0, 1.0 - abs(x) / width) / width),
}

# Non-default parameters for each surrogate (checked against the same formula).
OTHER_PARAMS = {
    "boxcar": {"width": 0.5, "scale": 2.0},
    "fast_sigmoid": {"slope": 2.5},
    "sigmoid": {"slope": 1.5},
    "atan": {"alpha": 0.75},
    "triangle": {"width": 2.0},
}

POINTS = [-3.0, -1.0, -0.75, -0.5, -0.3, -0.1, 0.0, 0.05, 0.2, 0.25, 0.5, 0.6, 0.9, 1.5, 4.0]
NAMES = SURROGATES.list()


def _param_names(name: str):
    sig = inspect.signature(SURROGATES.get(name).__init__)
    return [p for p in sig.parameters if p != "self"]


def _grad(surr: Surrogate, points):
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    y = surr(x)
    y.backward(torch.ones_like(y))
    return y.detach(), x.grad


def test_every_surrogate_is_documented():
    doc = surrogate_module.__doc__
    for name in NAMES:
        assert name in DOCUMENTED, f"surrogate {name!r} has no expected derivative in this test"
        assert f"\n{name} " in doc, f"surrogate {name!r} missing from the docstring table"


@pytest.mark.parametrize("name", NAMES)
def test_forward_is_heaviside(name):
    surr = get_surrogate(name)
    x = torch.tensor([-2.0, -1e-6, 0.0, 1e-6, 0.5, 3.0], dtype=torch.float64)
    y = surr(x)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert y.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    x32 = torch.tensor([[-0.5, 0.0], [0.25, -3.0]], dtype=torch.float32)
    assert surr(x32).dtype == torch.float32
    assert surr(x32).tolist() == [[0.0, 1.0], [1.0, 0.0]]


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_documented_derivative(name):
    defaults, g = DOCUMENTED[name]
    surr = get_surrogate(name)
    for k, v in defaults.items():
        assert getattr(surr, k) == v, f"{name}: default {k}"
    _, grad = _grad(surr, POINTS)
    expected = [g(x, **defaults) for x in POINTS]
    assert grad.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_backward_with_other_parameters(name):
    _, g = DOCUMENTED[name]
    params = OTHER_PARAMS[name]
    surr = get_surrogate(name, **params)
    _, grad = _grad(surr, POINTS)
    expected = [g(x, **params) for x in POINTS]
    assert grad.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # The parameters are used: the gradient differs from the default one somewhere.
    _, grad_default = _grad(get_surrogate(name), POINTS)
    assert not torch.allclose(grad, grad_default)


@pytest.mark.parametrize("name", NAMES)
def test_backward_chains_upstream_gradient(name):
    defaults, g = DOCUMENTED[name]
    surr = get_surrogate(name)
    pts = [-0.4, 0.0, 0.3]
    x = torch.tensor(pts, dtype=torch.float64, requires_grad=True)
    up = torch.tensor([2.0, -3.0, 0.5], dtype=torch.float64)
    surr(x).backward(up)
    expected = [u * g(p, **defaults) for u, p in zip(up.tolist(), pts)]
    assert x.grad.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_parameters_raise(name, bad):
    params = _param_names(name)
    assert params, f"{name} takes no parameters"
    for p in params:
        with pytest.raises(ValueError, match=p):
            get_surrogate(name, **{p: bad})


def test_unknown_name_lists_available():
    with pytest.raises(KeyError) as info:
        get_surrogate("no_such_surrogate")
    msg = str(info.value)
    assert "no_such_surrogate" in msg
    for name in NAMES:
        assert name in msg


def test_unknown_name_suggests_close_match():
    with pytest.raises(KeyError, match="did you mean 'fast_sigmoid'"):
        get_surrogate("fast_sigmod")


def test_names_are_case_insensitive_and_instances_pass_through():
    assert isinstance(get_surrogate("ATan"), SURROGATES.get("atan"))
    inst = get_surrogate("triangle", width=0.5)
    assert get_surrogate(inst) is inst
    with pytest.raises(TypeError):
        get_surrogate(inst, width=2.0)
