"""Options every long command shares, and options whose default and help come from a spec.

``FromSpec(EvalSpec).option("seed", ...)`` is a typer option whose help is the spec field's
description, and ``FromSpec(EvalSpec).defaults.seed`` its default: the spec
(``harness/specs.py``, ``fusion/vocab/expand.ExpandOptions``, ...) is the one place either
is written.
"""

from __future__ import annotations

import dataclasses
import inspect
from types import SimpleNamespace
from typing import Annotated, Any

import typer
from pydantic import BaseModel

# One progress flag for every long command: progress bars are shown unless --quiet.
QuietOption = Annotated[bool, typer.Option(help="No progress bars.")]
# fuse's former --progress/--no-progress, still accepted (scripts use it), no longer listed.
LegacyProgressOption = Annotated[
    bool, typer.Option("--progress/--no-progress", hidden=True, help="Deprecated: use --quiet.")
]


def progress_bars(quiet: bool, legacy_progress: bool = True) -> bool:
    """Whether to show progress bars; with ``--quiet`` (or the old ``--no-progress``) the
    libraries' own bars are hidden as well."""
    shown = legacy_progress and not quiet
    if not shown:
        from harness import logs

        logs.hide_progress_bars()
    return shown


class FromSpec:
    """Defaults and help texts read from a pydantic model's or a dataclass's fields (help:
    the field's description, or a dataclass field's ``metadata["help"]``), or defaults from
    a function's keyword parameters."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    @property
    def defaults(self) -> SimpleNamespace:
        """Every default, as attributes (required fields have none)."""
        if isinstance(self.spec, type) and issubclass(self.spec, BaseModel):
            names = [n for n, f in self.spec.model_fields.items() if not f.is_required()]
        elif dataclasses.is_dataclass(self.spec):
            names = [
                f.name
                for f in dataclasses.fields(self.spec)
                if f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING
            ]
        else:
            names = [
                name
                for name, p in inspect.signature(self.spec).parameters.items()
                if p.default is not inspect.Parameter.empty
            ]
        return SimpleNamespace(**{name: self.default(name) for name in names})

    def default(self, name: str) -> Any:
        if isinstance(self.spec, type) and issubclass(self.spec, BaseModel):
            return self.spec.model_fields[name].get_default(call_default_factory=True)
        if dataclasses.is_dataclass(self.spec):
            field = {f.name: f for f in dataclasses.fields(self.spec)}[name]
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
            return field.default
        return inspect.signature(self.spec).parameters[name].default

    def help(self, name: str) -> str | None:
        if isinstance(self.spec, type) and issubclass(self.spec, BaseModel):
            return self.spec.model_fields[name].description
        if dataclasses.is_dataclass(self.spec):
            return {f.name: f for f in dataclasses.fields(self.spec)}[name].metadata.get("help")
        return None

    def option(self, name: str, *param_decls: str, **kwargs: Any) -> Any:
        """``typer.Option`` with the field's description as its help (unless given)."""
        kwargs.setdefault("help", self.help(name))
        return typer.Option(*param_decls, **kwargs)

    def argument(self, name: str, **kwargs: Any) -> Any:
        """``typer.Argument`` with the field's description as its help (unless given)."""
        kwargs.setdefault("help", self.help(name))
        return typer.Argument(**kwargs)
