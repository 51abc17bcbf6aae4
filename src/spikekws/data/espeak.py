"""A minimal ctypes binding to the eSpeak NG speech synthesiser.

The shared library and its data folder come from the ``espeakng-loader`` wheel, so no system
installation of eSpeak NG is needed. eSpeak NG keeps global state and is not thread safe: there is
one :class:`ESpeak` per process, to be used from one thread (worker processes each get their own).

Reproducibility: the engine draws random numbers (breath/aspiration noise), which ``seed`` fixes,
and it also carries oscillator state from one utterance to the next that no API call resets. The
same sequence of calls with the same seeds in a fresh process therefore gives identical samples,
but the same call made at different points of a process's life may differ slightly.
"""
from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import List, Optional

import numpy as np

__all__ = ["ESpeak", "list_variants", "data_path"]

# espeak_AUDIO_OUTPUT: synchronous retrieval through the synth callback, no audio device
_AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_POSITION_TYPE
_POS_CHARACTER = 1
# synth flags
_CHARS_UTF8 = 1
# espeak_PARAMETER
_RATE = 1
_PITCH = 3
_RANGE = 4
# espeak_ERROR
_EE_OK = 0

_RATE_MIN, _RATE_MAX = 80, 450

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_instance_lock = threading.Lock()
_synth_lock = threading.RLock()  # the engine is not thread safe: one utterance at a time


def _loader():
    try:
        import espeakng_loader  # type: ignore
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the eSpeak NG library is provided by the 'espeakng-loader' package; install it with:\n"
            "pip install espeakng-loader"
        ) from exc
    return espeakng_loader


def data_path() -> Path:
    """The ``espeak-ng-data`` folder shipped with ``espeakng-loader``."""
    return Path(_loader().get_data_path())


def list_variants() -> List[str]:
    """Names of the voice variants shipped in ``espeak-ng-data/voices/!v``, sorted."""
    vdir = data_path() / "voices" / "!v"
    if not vdir.is_dir():
        return []
    return sorted(p.name for p in vdir.iterdir() if p.is_file())


class ESpeak:
    """Synthesise text to a float32 waveform at :attr:`sample_rate` (normally 22050 Hz).

    The engine is a process-wide singleton: ``ESpeak()`` returns the instance of the current
    process, creating and initialising it on first use (a forked child gets a fresh one).
    """

    _instance: Optional["ESpeak"] = None
    _instance_pid: Optional[int] = None

    def __new__(cls) -> "ESpeak":
        with _instance_lock:
            if cls._instance is None or cls._instance_pid != os.getpid():
                inst = super().__new__(cls)
                inst._setup()
                cls._instance = inst
                cls._instance_pid = os.getpid()
            return cls._instance

    def _setup(self) -> None:
        loader = _loader()
        lib = ctypes.CDLL(loader.get_library_path())
        self._lib = lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
            self._set_seed.restype = ctypes.c_int

        path = os.fsencode(loader.get_data_path())
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, path, 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate}); data path: {path!r}")
        self.sample_rate: int = int(rate)
        self._chunks: List[np.ndarray] = []
        # keep a reference to the callback so it is not garbage collected
        self._cb = _CALLBACK(self._on_samples)
        lib.espeak_SetSynthCallback(self._cb)
        self._voice: Optional[str] = None
        self._known = set(list_variants())
        #: number of utterances synthesised by this process so far
        self.n_synth = 0

    def _on_samples(self, wav, numsamples, events) -> int:  # called synchronously from espeak_Synth
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # continue synthesis

    def set_voice(self, voice: str) -> None:
        """Select a voice by name, e.g. ``"en-us"``, ``"en-us+m3"``, ``"ru+f2"``."""
        with _synth_lock:
            self._set_voice(voice)

    def _set_voice(self, voice: str) -> None:
        if voice == self._voice:
            return
        if "+" in voice:
            variant = voice.split("+", 1)[1]
            if variant and variant not in self._known:
                raise ValueError(f"unknown eSpeak NG voice variant {variant!r} in voice {voice!r}; "
                                 f"see spikekws.data.espeak.list_variants()")
        err = self._lib.espeak_SetVoiceByName(voice.encode("utf-8"))
        if err != _EE_OK:
            self._voice = None
            raise ValueError(f"unknown eSpeak NG voice {voice!r} (espeak_SetVoiceByName error {err})")
        self._voice = voice

    @property
    def can_seed(self) -> bool:
        """Whether the library lets the random generator be seeded (``espeak_ng_SetRandSeed``)."""
        return self._set_seed is not None

    def synth(self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50,
              pitch_range: int = 50, seed: Optional[int] = None) -> np.ndarray:
        """Synthesise ``text`` (UTF-8, any script eSpeak NG supports) and return float32 samples
        in [-1, 1] at :attr:`sample_rate`.

        ``rate`` is in words per minute (80..450), ``pitch`` and ``pitch_range`` are 0..100.
        ``seed`` seeds the engine's noise generator first (ignored by libraries without
        ``espeak_ng_SetRandSeed``, see :attr:`can_seed`).
        """
        with _synth_lock:
            return self._synth(text, voice, rate, pitch, pitch_range, seed)

    def _synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int,
               seed: Optional[int]) -> np.ndarray:
        self._set_voice(voice)
        lib = self._lib
        if seed is not None and self._set_seed is not None:
            self._set_seed(int(seed) & 0x7FFFFFFF)
        lib.espeak_SetParameter(_RATE, int(min(max(rate, _RATE_MIN), _RATE_MAX)), 0)
        lib.espeak_SetParameter(_PITCH, int(min(max(pitch, 0), 100)), 0)
        lib.espeak_SetParameter(_RANGE, int(min(max(pitch_range, 0), 100)), 0)
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data, len(data))
        self._chunks = []
        err = lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with error {err} for text {text!r}")
        lib.espeak_Synchronize()
        self.n_synth += 1
        chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return (np.concatenate(chunks).astype(np.float32) / 32768.0)
