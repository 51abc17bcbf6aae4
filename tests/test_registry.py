"""The generic name -> object Registry."""
from __future__ import annotations

import pytest

from spikekws.registry import Registry


def _registry():
    reg = Registry("widget")

    @reg.register("Gizmo")
    class Gizmo:
        def __init__(self, size, *, color="red"):
            self.size = size
            self.color = color

    def make_gadget(n=1):
        return ("gadget", n)

    reg.register("gadget", make_gadget)
    return reg, Gizmo, make_gadget


def test_register_get_build_list():
    reg, Gizmo, make_gadget = _registry()
    assert reg.list() == ["gadget", "gizmo"]
    assert len(reg) == 2
    assert list(reg) == ["gadget", "gizmo"]
    assert reg.get("gizmo") is Gizmo
    assert reg.get("GIZMO") is Gizmo  # names are case-insensitive
    assert reg.get("gadget") is make_gadget
    g = reg.build("gizmo", 3, color="blue")
    assert isinstance(g, Gizmo) and g.size == 3 and g.color == "blue"
    assert reg.build("Gadget", n=4) == ("gadget", 4)
    assert "gizmo" in reg and "GIZMO" in reg and "nothing" not in reg and 5 not in reg
    assert "widget" in repr(reg) and "gizmo" in repr(reg)


def test_decorator_returns_the_object_unchanged():
    reg = Registry("thing")

    def f():
        return 1

    assert reg.register("f")(f) is f
    assert reg.register("g", f) is f
    assert reg.list() == ["f", "g"]


def test_duplicate_registration():
    reg, Gizmo, _ = _registry()
    with pytest.raises(ValueError, match="gizmo.*already registered"):
        reg.register("gizmo", object())
    with pytest.raises(ValueError, match="already registered"):
        reg.register("GIZMO")(lambda: None)
    # The first entry survives; registering the same object again is harmless.
    assert reg.get("gizmo") is Gizmo
    assert reg.register("gizmo", Gizmo) is Gizmo
    assert len(reg) == 2


def test_unknown_name_message():
    reg, _, _ = _registry()
    with pytest.raises(KeyError) as info:
        reg.get("gizmos")
    msg = str(info.value)
    assert "unknown widget 'gizmos'" in msg
    assert "did you mean 'gizmo'?" in msg
    assert "available: gadget, gizmo" in msg
    with pytest.raises(KeyError) as info:
        reg.build("zzzzzz")
    assert "did you mean" not in str(info.value)
    assert "gadget, gizmo" in str(info.value)


def test_empty_registry_and_bad_name_type():
    reg = Registry("empty")
    assert reg.list() == [] and len(reg) == 0
    with pytest.raises(KeyError, match="none"):
        reg.get("x")
    with pytest.raises(TypeError, match="string"):
        reg.get(3)  # type: ignore[arg-type]


def test_package_registries_use_it():
    from spikekws.models import MODELS
    from spikekws.neurons import NEURONS, SURROGATES

    for r in (MODELS, NEURONS, SURROGATES):
        assert isinstance(r, Registry)
        assert len(r) > 0
        assert all(name == name.lower() for name in r.list())
