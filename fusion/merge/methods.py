"""The merge methods, in one registry: name -> what the method needs and who runs it.

Each method declares whether it needs a base (pivot) model and the parameters it accepts,
with their defaults. For mergekit's methods both come from mergekit's own method spec (its
``InputContract`` base policy and its ``ParameterSpec`` list), read when the method is first
asked for, so they cannot drift from what mergekit will run; mergekit is an optional extra
and is imported only then. VaRM (FuseChat v1, which mergekit lacks) is fusebench's own and
declared here. Configs are validated and merges dispatched through ``method(name)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from fusion.merge.errors import MergeError

Backend = Literal["mergekit", "varm"]

# The methods fusebench offers, and which implementation runs each (mergekit's registry
# names for mergekit's; it has more, these are the ones tested here).
METHODS: dict[str, Backend] = {
    "linear": "mergekit",
    "task_arithmetic": "mergekit",
    "ties": "mergekit",
    "dare_ties": "mergekit",
    "dare_linear": "mergekit",
    "slerp": "mergekit",
    "model_stock": "mergekit",
    "sce": "mergekit",
    "varm": "varm",
}

REQUIRED: Any = object()  # a parameter's default when the config must give it


@dataclass(frozen=True)
class Parameter:
    """One method parameter: set under ``parameters`` or per model."""

    name: str
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class MergeMethod:
    """What a method needs: a base model or not, and the parameters it accepts."""

    name: str
    backend: Backend
    needs_base: bool
    parameters: tuple[Parameter, ...] = ()

    def check_parameters(
        self,
        shared: dict[str, Any],
        per_model: list[tuple[str, str, dict]],
        shared_key: str = "parameters",
    ) -> None:
        """Unknown parameters and missing required ones, as one line naming the first.

        ``shared`` is the config's method parameters (under ``shared_key``); ``per_model``
        gives each model's name, the config key of its own parameters, and those parameters.
        """
        declared = {parameter.name: parameter for parameter in self.parameters}
        places = [(shared_key, shared)] + [(key, given) for _, key, given in per_model]
        for where, given in places:
            for name in given:
                if name not in declared:
                    if not declared:
                        raise MergeError(f"{where}.{name}: {self.name} takes no parameters")
                    raise MergeError(
                        f"{where}.{name}: {self.name} has no such parameter "
                        f"(known: {', '.join(declared)})"
                    )
        for parameter in self.parameters:
            if parameter.required and parameter.name not in shared:
                missing = [model for model, _, given in per_model if parameter.name not in given]
                if missing:
                    raise MergeError(
                        f"{self.name} needs parameter {parameter.name!r}: set it under "
                        f"{shared_key} or for {missing[0]}"
                    )

    def check_inputs(self, models: list[Any], base: Any | None) -> None:
        """The number of inputs, per the method's contract (mergekit's own check; the base
        counts as an input). ``models`` and ``base`` identify the inputs (resolved paths)."""
        if self.backend != "mergekit":
            return
        ids = list(models)
        if base is not None and base not in ids:
            ids.append(base)
        try:
            mergekit_method(self.name).validate_inputs(ids, base)
        except ValueError as exc:
            raise MergeError(f"{self.name}: {exc} (base_model counts as an input)") from None


def known() -> str:
    """The method names, quoted, for messages."""
    return ", ".join(repr(name) for name in METHODS)


def check_name(name: str) -> str:
    """``name`` if it is a method (for config validators); a ValueError listing them if not."""
    if name not in METHODS:
        raise ValueError(f"unknown merge method {name!r}; known: {known()}")
    return name


@cache
def method(name: str) -> MergeMethod:
    """The registered method ``name`` (a mergekit method's contract read from mergekit)."""
    backend = METHODS.get(name)
    if backend is None:
        raise MergeError(f"unknown merge method {name!r}; known: {known()}")
    if backend == "varm":
        # Per group, weights from the models' squared change against the pivot: the pivot is
        # the reference, and nothing is left to set (granularity is a config key of its own).
        return MergeMethod(name=name, backend="varm", needs_base=True)
    return _from_mergekit(name)


def mergekit_method(name: str) -> Any:
    """mergekit's own method object (its registry entry)."""
    try:
        from mergekit.merge_methods import registry
    except ImportError:
        raise MergeError(f"method {name} needs mergekit: pip install 'fusebench[merge]'") from None
    return registry.get(name)


def _from_mergekit(name: str) -> MergeMethod:
    from mergekit.merge_methods.base import MISSING, BasePolicy

    spec = mergekit_method(name).spec
    parameters = tuple(
        Parameter(p.name, REQUIRED if p.default is MISSING else p.default) for p in spec.parameters
    )
    # Only a REQUIRED base is needed; linear ignores a base (one more input if given).
    return MergeMethod(
        name=name,
        backend="mergekit",
        parameters=parameters,
        needs_base=spec.contract.base == BasePolicy.REQUIRED,
    )
