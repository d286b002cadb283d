"""espeak-ng speech synthesis with word timings, through the system's libespeak-ng (Debian: libespeak-ng1).

The aligner needs a reference reading of the script *and* where each word
starts in it. The ``espeak-ng`` command line prints no timings, but the library
reports a word event (character offset, time in the output) for every word it
speaks; ctypes reaches it with no compiler and no model download.

The library keeps global state, so calls are serialised by a lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass

import numpy as np

from orchestrator.errors import LongtakeError

_EVENT_WORD = 1
_EVENT_MSG_TERMINATED = 6
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_SSML = 0x10
_POS_CHARACTER = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_WORDGAP = 7

_LOCK = threading.Lock()
_LIB: "ctypes.CDLL | None" = None
_RATE_HZ = 0


class EspeakMissing(LongtakeError):
    exit_code = 2


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class WordEvent:
    char_offset: int  # 0-based offset of the word's first character in the synthesised text
    length_chars: int
    start_ms: int  # where espeak-ng starts speaking it, in its output


@dataclass(frozen=True)
class Synthesis:
    samples: np.ndarray  # int16 mono
    sample_rate_hz: int
    words: tuple[WordEvent, ...]


def _library() -> ctypes.CDLL:
    global _LIB, _RATE_HZ
    if _LIB is not None:
        return _LIB
    name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise EspeakMissing(
            "captions from a script need espeak-ng's library (libespeak-ng), which is not installed; "
            "install it (Debian/Ubuntu: `apt-get install espeak-ng`, macOS: `brew install espeak-ng`) or give captions.file instead"
        ) from None
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                 ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 500, None, 0)
    if rate <= 0:
        raise EspeakMissing("libespeak-ng is installed but could not start (its data folder espeak-ng-data is missing?); reinstall espeak-ng")
    _LIB, _RATE_HZ = lib, rate
    return lib


def synthesize(text: str, *, voice: str = "en-us", rate_wpm: int = 175, pitch: int = 50, word_gap_ms: int = 0, ssml: bool = False) -> Synthesis:
    """Speak ``text`` (UTF-8; SSML when ``ssml``) and return the audio and the start of every word espeak-ng spoke."""
    with _LOCK:
        lib = _library()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise LongtakeError(f"espeak-ng has no voice {voice!r}; list them with `espeak-ng --voices`")
        lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        lib.espeak_SetParameter(_PARAM_WORDGAP, int(round(word_gap_ms / 10)), 0)
        chunks: list[np.ndarray] = []
        events: list[WordEvent] = []

        def on_audio(wav, count, event_ptr) -> int:
            if count > 0 and wav:
                chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            k = 0
            while True:
                ev = event_ptr[k]
                if ev.type == 0:  # end of this list
                    break
                if ev.type == _EVENT_WORD:
                    events.append(WordEvent(ev.text_position - 1, ev.length, ev.audio_position))
                k += 1
            return 0

        callback = _CALLBACK(on_audio)  # kept alive until espeak_Synth returns
        lib.espeak_SetSynthCallback(callback)
        data = text.encode("utf-8") + b"\0"
        flags = _CHARS_UTF8 | (_SSML if ssml else 0)
        status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
        if status != 0:
            raise LongtakeError(f"espeak-ng failed to synthesise the script (error {status})")
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return Synthesis(samples.astype(np.int16, copy=False), _RATE_HZ, tuple(events))
