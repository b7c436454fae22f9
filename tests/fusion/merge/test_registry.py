"""The merge method registry: every method resolves, mergekit's contracts are read from
mergekit itself, and a bad method or parameter is refused in one line."""

from __future__ import annotations

import pytest

from fusion.merge.errors import MergeError
from fusion.merge.methods import METHODS, check_name, mergekit_method, method

MERGEKIT = [name for name, backend in METHODS.items() if backend == "mergekit"]


@pytest.mark.parametrize("name", MERGEKIT)
def test_every_mergekit_method_resolves_with_mergekits_own_contract(name: str) -> None:
    from mergekit.merge_methods.base import MISSING

    entry = method(name)
    assert entry.name == name and entry.backend == "mergekit"
    own = mergekit_method(name)
    # needs_base as mergekit decides it: three distinct inputs and no base are refused for
    # a missing base exactly when the method needs one (the base is checked before counts).
    try:
        own.validate_inputs(["a", "b", "c"], None)
        refused_for_base = False
    except ValueError as exc:
        refused_for_base = "requires a base input" in str(exc)
    assert entry.needs_base == refused_for_base
    assert [(p.name, p.required) for p in entry.parameters] == [
        (p.name, p.default is MISSING) for p in own.spec.parameters
    ]
    defaults = {p.name: p.default for p in entry.parameters if not p.required}
    assert defaults == {p.name: p.default for p in own.spec.parameters if p.default is not MISSING}


def test_known_facts() -> None:
    """What the README and FuseChat rely on: linear alone takes no base; VaRM is ours."""
    assert [name for name in METHODS if not method(name).needs_base] == ["linear"]
    varm = method("varm")
    assert varm.backend == "varm" and varm.needs_base and varm.parameters == ()
    assert [p.name for p in method("slerp").parameters] == ["t"]
    assert method("sce").parameters[-1].name == "select_topk"
    assert method("sce").parameters[-1].default == 1.0  # mergekit's; FuseChat used 0.1


def test_unknown_method_is_one_line_listing_the_known() -> None:
    with pytest.raises(MergeError) as caught:
        method("frankenmerge")
    message = str(caught.value)
    assert "\n" not in message and "unknown merge method 'frankenmerge'" in message
    assert all(repr(name) in message for name in METHODS)
    with pytest.raises(ValueError, match="unknown merge method 'x'; known: 'linear'"):
        check_name("x")


def test_bad_parameters_are_one_line() -> None:
    ties = method("ties")
    models = [("a", "models.0.parameters", {}), ("b", "models.1.parameters", {"weight": 1})]
    with pytest.raises(MergeError) as caught:
        ties.check_parameters({"weight": 0.5, "densty": 0.5}, models)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("parameters.densty: ties has no such parameter (known: ")
    assert "density" in message
    with pytest.raises(MergeError, match=r"^models\.1\.parameters\.t: ties has no such"):
        ties.check_parameters({"weight": 0.5}, [models[0], ("b", "models.1.parameters", {"t": 1})])
    with pytest.raises(
        MergeError, match="ties needs parameter 'weight': set it under parameters or for a"
    ):
        ties.check_parameters({}, models)
    ties.check_parameters({"weight": 0.5, "density": 0.6}, models)  # accepted
    ties.check_parameters({}, [("a", "m0", {"weight": 1}), ("b", "m1", {"weight": 2})])
    with pytest.raises(MergeError, match=r"^parameters\.weight: varm takes no parameters$"):
        method("varm").check_parameters({"weight": 1}, [])


def test_input_counts_follow_mergekit() -> None:
    method("slerp").check_inputs(["a"], "base")
    with pytest.raises(MergeError, match="slerp: .*exactly 2 inputs.*base_model counts"):
        method("slerp").check_inputs(["a", "b"], "base")
    method("varm").check_inputs(["a", "b"], "base")  # fusebench's own: no count contract
