"""Voice-activity detection backends and their registry.

``VAD_BACKENDS`` holds the backends whose dependencies are installed here
(checked without importing them, so this module imports fast). ``get_vad``
builds one by name; a known backend that cannot load here falls back to
``energy``, which needs nothing, with a logged warning.
"""

from __future__ import annotations

import logging

from orchestrator.errors import ConfigError
from segmenters.vad.base import VAD_SAMPLE_RATE_HZ, VadBackend, VadResult
from segmenters.vad.energy import EnergyVad
from segmenters.vad.silero import SileroVad
from segmenters.vad.webrtc import WebrtcVad

__all__ = ["FALLBACK_VAD", "KNOWN_VADS", "VAD_BACKENDS", "VAD_SAMPLE_RATE_HZ", "VadBackend", "VadResult", "get_vad"]

log = logging.getLogger("longtake")

FALLBACK_VAD = EnergyVad.NAME
_ALL: tuple[type[VadBackend], ...] = (SileroVad, WebrtcVad, EnergyVad)
KNOWN_VADS: tuple[str, ...] = tuple(cls.NAME for cls in _ALL)
VAD_BACKENDS: dict[str, type[VadBackend]] = {cls.NAME: cls for cls in _ALL if cls.is_available()}


def get_vad(name: str, threshold: float = 0.5) -> VadBackend:
    """The backend called ``name``; unknown names raise ConfigError, unloadable ones fall back to ``energy``."""
    if name not in KNOWN_VADS:
        raise ConfigError(f"unknown VAD backend {name!r}: `segmenter.vad` must be one of {', '.join(KNOWN_VADS)}")
    cls = VAD_BACKENDS.get(name)
    if cls is not None:
        try:
            return cls(threshold=threshold)
        except ValueError as exc:
            raise ConfigError(f"`segmenter.vad_threshold`: {exc}") from None
        except ImportError as exc:
            reason = str(exc)
        except (OSError, RuntimeError) as exc:  # a broken install or model file
            reason = f"{type(exc).__name__}: {exc}"
    else:
        reason = "its dependencies are not installed"
    if name == FALLBACK_VAD:  # cannot happen (energy needs only numpy/scipy), but never loop
        raise ConfigError(f"the {FALLBACK_VAD} VAD cannot load: {reason}")
    log.warning("VAD backend %r is not available here (%s); using the %r backend instead", name, reason, FALLBACK_VAD)
    return VAD_BACKENDS[FALLBACK_VAD](threshold=threshold)
