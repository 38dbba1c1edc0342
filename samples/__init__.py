"""Builders of sample files (archives, documents, executables, mail, ...) and the few
binary samples no builder can make (`files/`, each with a README saying how it was made).

The test suite and the benchmarks both use them; nothing in the services imports them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

# (file type, file subtype, builder of a file identified as that pair)
IdentificationSample = tuple[str, str, Callable[[], bytes]]


def identification_samples() -> list[tuple[str, IdentificationSample]]:
    """Every module's IDENTIFICATION_SAMPLES, each with the name of the module it is from."""
    found: list[tuple[str, IdentificationSample]] = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        found += [(module_info.name, sample) for sample in getattr(module, "IDENTIFICATION_SAMPLES", [])]
    return found
