"""Generator backends behind one interface (``generators.base.Generator``), one file each."""

from __future__ import annotations

from generators.base import GenerateRequest, GenerateResult, Generator

GENERATORS: dict[str, type[Generator]] = {}


def register(cls: type[Generator]) -> type[Generator]:
    GENERATORS[cls.NAME] = cls
    return cls


def get_generator_class(name: str) -> type[Generator]:
    _import_backends()
    try:
        return GENERATORS[name]
    except KeyError:
        raise KeyError(f"unknown generator backend {name!r}; known: {sorted(GENERATORS)}") from None


def _import_backends() -> None:
    # Backend modules are light at import time (heavy imports live in load()).
    import importlib

    for module in ("generators.ltx2", "generators.animatic", "generators.fal"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


__all__ = ["GENERATORS", "GenerateRequest", "GenerateResult", "Generator", "get_generator_class", "register"]
