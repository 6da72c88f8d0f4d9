"""Modality name -> handler. Handler modules register their classes here when imported.

The package `__init__` imports every built-in handler module, so importing anything under
`rlbind_bench.modalities` fills the registry; a third-party handler registers itself the same way.
"""

from __future__ import annotations

from rlbind_bench.constants import MODALITIES
from rlbind_bench.errors import UserError
from rlbind_bench.modalities.base import ModalityHandler

# Kept in table order (constants.MODALITIES, then other handlers as registered), whatever order the handler
# modules happen to be imported in: listings and error messages iterate it.
HANDLERS: dict[str, ModalityHandler] = {}
_RANK = {m: i for i, m in enumerate(MODALITIES)}


def register_handler(cls: type[ModalityHandler]) -> type[ModalityHandler]:
    """Class decorator: one instance of `cls` serves modality `cls.name`."""
    existing = HANDLERS.get(cls.name)
    if existing is not None and type(existing) is not cls:
        raise ValueError(f"modality {cls.name!r} already has a handler ({type(existing).__name__})")
    HANDLERS[cls.name] = cls()
    ordered = sorted(HANDLERS.items(), key=lambda item: _RANK.get(item[0], len(_RANK)))
    HANDLERS.clear()
    HANDLERS.update(ordered)
    return cls


def get_handler(modality: str) -> ModalityHandler:
    try:
        return HANDLERS[modality]
    except KeyError:
        raise UserError(f"unknown modality {modality!r} (known: {', '.join(HANDLERS)})") from None
