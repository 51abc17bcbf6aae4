"""Built-in synthetic speech-commands dataset, spoken by eSpeak NG.

:func:`generate` writes a folder with the layout of Google Speech Commands::

    out_dir/
      <word>/<speaker>_nohash_<k>.wav   16-bit PCM mono, exactly clip_seconds long
      validation_list.txt               relative paths of the validation clips
      testing_list.txt                  relative paths of the test clips
      labels.json                       {folder: {"text": word, "lang": "en"|"ru"}}
      speakers.json                     {speaker id: voice, pitch, range, rate, split}
      manifest.json                     generation arguments; written last (marks completion)

A *speaker* is an eSpeak NG voice variant combined with a pitch, a pitch range, a speaking rate
and an English accent (``en-us`` or ``en``; Russian words use ``ru``). Every speaker says every
word of the vocabulary ``per_speaker`` times. The train/validation/test split is by speaker.

Folder names are ASCII. English words are used as they are; Russian words are transliterated
(:func:`transliterate`), and a Russian folder whose transliteration equals an English word gets the
suffix ``_ru`` (``стоп`` -> ``stop_ru``).

Everything is derived from ``seed``: the same arguments give byte-identical files whatever the
number of worker processes. Each speaker is synthesised in a fresh process (eSpeak NG carries
state from one utterance to the next), so a clip depends on the seed, its speaker, word and
repetition, the audio arguments, and the vocabulary of the run, but not on the other speakers.

Resampling from the engine rate (22050 Hz) always uses the numpy implementation
:func:`resample_poly` (equal to ``scipy.signal.resample_poly`` up to rounding), so the output does
not depend on whether the optional scipy is installed.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import multiprocessing as mp
import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..atomic import atomic_write_text

log = logging.getLogger("spikekws.data.synth")

__all__ = [
    "VOCAB_EN", "VOCAB_RU", "LANGS", "generate", "vocabulary", "transliterate", "resample_poly",
    "speaker_table",
]

VOCAB_EN: Tuple[str, ...] = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four",
    "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right",
    "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)
"""The 35 words of Google Speech Commands v2."""

VOCAB_RU: Tuple[str, ...] = (
    "да", "нет", "вверх", "вниз", "влево", "вправо", "вперёд", "назад", "стоп", "старт",
    "ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять",
    "включи", "выключи", "отмена",
)
"""A Russian command set in the spirit of RuSC: yes/no, directions, start/stop, digits, on/off/cancel."""

LANGS: Tuple[str, ...] = ("en", "ru")
_VOCABS: Dict[str, Tuple[str, ...]] = {"en": VOCAB_EN, "ru": VOCAB_RU}

# Bump when a change of the generator changes its output: cached datasets are then rejected.
GENERATOR_VERSION = 2

_MANIFEST = "manifest.json"
_MARKER = ".spikekws-synth"
_FILE_RE = re.compile(r"^[0-9a-f]{8,}_nohash_[0-9]+\.wav$")

# --- transliteration --------------------------------------------------------------------------

_TRANSLIT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
}


def transliterate(word: str) -> str:
    """Latin transliteration of a Russian word, for folder names (``вперёд`` -> ``vpered``).

    Characters other than Cyrillic letters are kept if they are ASCII letters or digits and
    become ``_`` otherwise.
    """
    out = []
    for ch in word.lower():
        if ch in _TRANSLIT:
            out.append(_TRANSLIT[ch])
        elif ch.isascii() and ch.isalnum():
            out.append(ch)
        else:
            out.append("_")
    return "".join(out).strip("_") or "word"


def vocabulary(langs: Union[str, Sequence[str]] = ("en",),
               words: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, str]]:
    """The ``{folder: {"text": word, "lang": lang}}`` mapping that :func:`generate` writes to
    ``labels.json``, sorted by folder name.

    ``words`` selects a subset or adds custom words: each entry is a folder name or a word of the
    built-in vocabularies, or a new word (ASCII letters for English, Cyrillic for Russian; its
    language must be among ``langs``).
    """
    langs = _canon_langs(langs)
    entries: List[Tuple[str, str]] = []  # (text, lang)
    if words is None:
        entries = [(w, lang) for lang in langs for w in _VOCABS[lang]]
    else:
        if isinstance(words, str):
            words = [w for w in re.split(r"[,\s]+", words) if w]
        known: Dict[str, Tuple[str, str]] = {}
        for lang in langs:
            for w in _VOCABS[lang]:
                known[_folder_name(w, lang, set(VOCAB_EN))] = (w, lang)
                known.setdefault(w, (w, lang))
        for w in words:
            w = str(w).strip()
            if not w:
                continue
            if w in known:
                entries.append(known[w])
            elif re.fullmatch(r"[a-z][a-z0-9_]*", w) and "en" in langs:
                entries.append((w, "en"))
            elif re.fullmatch(r"[а-яё][а-яё-]*", w.lower()) and "ru" in langs:
                entries.append((w.lower(), "ru"))
            else:
                raise ValueError(
                    f"word {w!r} is not in the vocabulary of langs={list(langs)} and cannot be "
                    f"added as a custom word (lowercase ASCII for 'en', Cyrillic for 'ru', "
                    f"its language among langs)"
                )
        if not entries:
            raise ValueError("words is empty")
    en_names = set(VOCAB_EN) | {t for t, lang in entries if lang == "en"}
    table = {_folder_name(t, lang, en_names): {"text": t, "lang": lang} for t, lang in entries}
    return dict(sorted(table.items()))


def _folder_name(text: str, lang: str, en_names: Iterable[str]) -> str:
    if lang == "en":
        return text
    name = transliterate(text)
    return name + "_ru" if name in en_names else name


# --- resampling --------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _polyphase_filter(up: int, down: int) -> Tuple[np.ndarray, int]:
    """Kaiser-windowed (beta 5) sinc low-pass with cutoff at the lower Nyquist frequency, split
    into ``up`` phases: returns (bank[up, taps], half_len)."""
    max_rate = max(up, down)
    half_len = 10 * max_rate
    n = 2 * half_len + 1
    m = np.arange(n, dtype=np.float64) - half_len
    cutoff = 1.0 / max_rate
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(n, 5.0)
    h *= up / h.sum()
    taps = -(-n // up)
    padded = np.zeros(taps * up)
    padded[:n] = h
    # bank[p, i] = h[p + i * up]
    bank = padded.reshape(taps, up).T.copy()
    return bank, half_len


def resample_poly(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Polyphase rational resampling of a 1-D signal by ``up / down`` (numpy only).

    Uses the same filter design, zero padding and alignment as ``scipy.signal.resample_poly``
    with its default arguments; the output has ``ceil(len(x) * up / down)`` samples.
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError("resample_poly expects a 1-D signal")
    up, down = int(up), int(down)
    if up < 1 or down < 1:
        raise ValueError("up and down must be positive integers")
    g = math.gcd(up, down)
    up, down = up // g, down // g
    out_dtype = np.float32 if x.dtype == np.float32 else np.float64
    if up == down == 1:
        return x.astype(out_dtype, copy=True)
    n_in = x.shape[0]
    n_out = -(-n_in * up // down)
    if n_in == 0:
        return np.zeros(0, dtype=out_dtype)
    bank, half_len = _polyphase_filter(up, down)
    taps = bank.shape[1]
    # output n sits at position t = n*down + half_len of the zero-stuffed signal convolved with h:
    # y[n] = sum_i bank[t % up, i] * x[t // up - i]
    t = np.arange(n_out, dtype=np.int64) * down + half_len
    phase = t % up
    base = t // up
    xp = np.zeros(n_in + 2 * taps + 1, dtype=np.float64)
    xp[taps:taps + n_in] = x
    idx = (base + taps)[:, None] - np.arange(taps)[None, :]
    np.clip(idx, 0, xp.shape[0] - 1, out=idx)  # clipped indices only ever hit zero padding
    y = np.einsum("ni,ni->n", bank[phase], xp[idx])
    return y.astype(out_dtype)


# --- speakers ----------------------------------------------------------------------------------

# Variants left out: heavy echo/robotic/whispered/distorted ones that make words hard to
# recognise, and helper variants that are not voices. "Alicia" and "Marco" carry a strong
# echo (amplitude 50 and 80), "zac" scales every formant by 1.45: in trials they were the
# clear intelligibility outliers (a model trained on the other voices got half their words).
_EXCLUDED_VARIANTS = frozenset({
    "Demonic", "croak", "UniRobot", "anikaRobot", "announcer", "fast", "caleb", "whisper",
    "whisperf", "RicishayMax", "RicishayMax2", "RicishayMax3", "Mr serious",
    "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7",
    "robosoft8", "Alicia", "Marco", "zac",
})
_FEMALE_VARIANTS = frozenset({
    "f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty", "belinda",
    "linda", "grandma", "steph", "steph2", "steph3", "shelby",
})
_EN_BASES = ("en-us", "en")
_PITCH = (25, 75)
_RANGE = (20, 80)
_RATE = (130, 210)
_MAX_RATE = 450


@lru_cache(maxsize=1)
def _variant_pools() -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    from .espeak import list_variants

    usable = [v for v in list_variants() if v not in _EXCLUDED_VARIANTS]
    female = tuple(v for v in usable if v in _FEMALE_VARIANTS)
    other = tuple(v for v in usable if v not in _FEMALE_VARIANTS)
    return female, other


@dataclass(frozen=True)
class _Speaker:
    id: str
    index: int
    variant: str
    en_voice: str
    pitch: int
    range: int
    rate: int
    split: str

    def voice(self, lang: str) -> str:
        base = self.en_voice if lang == "en" else lang
        return f"{base}+{self.variant}" if self.variant else base


def _seed_tag(seed: int) -> str:
    return hashlib.sha1(f"spikekws-synth:{seed}".encode()).hexdigest()[:4]


def _split_counts(speakers: int, valid_fraction: float, test_fraction: float) -> Tuple[int, int]:
    n_valid = max(1, int(round(valid_fraction * speakers))) if valid_fraction > 0 else 0
    n_test = max(1, int(round(test_fraction * speakers))) if test_fraction > 0 else 0
    while n_valid + n_test > speakers - 1:  # keep at least one training speaker
        if n_valid >= n_test and n_valid > (1 if valid_fraction > 0 else 0):
            n_valid -= 1
        elif n_test > (1 if test_fraction > 0 else 0):
            n_test -= 1
        else:
            break
    return n_valid, n_test


def _speakers(seed: int, speakers: int, valid_fraction: float, test_fraction: float) -> List[_Speaker]:
    female, other = _variant_pools()
    n_valid, n_test = _split_counts(speakers, valid_fraction, test_fraction)
    order = np.random.default_rng(np.random.SeedSequence([seed, 0])).permutation(speakers)
    split = ["train"] * speakers
    for i in order[:n_test]:
        split[int(i)] = "test"
    for i in order[n_test:n_test + n_valid]:
        split[int(i)] = "valid"
    tag = _seed_tag(seed)
    out = []
    for i in range(speakers):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, i]))
        pool = female if (rng.random() < 0.5 and female) or not other else other
        variant = pool[int(rng.integers(len(pool)))] if pool else ""
        out.append(_Speaker(
            id=f"{i:04x}{tag}",
            index=i,
            variant=variant,
            en_voice=_EN_BASES[int(rng.integers(len(_EN_BASES)))],
            pitch=int(rng.integers(_PITCH[0], _PITCH[1] + 1)),
            range=int(rng.integers(_RANGE[0], _RANGE[1] + 1)),
            rate=int(rng.integers(_RATE[0], _RATE[1] + 1)),
            split=split[i],
        ))
    return out


def speaker_table(seed: int = 0, speakers: int = 100, valid_fraction: float = 0.1,
                  test_fraction: float = 0.1) -> Dict[str, Dict[str, Any]]:
    """The speakers :func:`generate` would use, as written to ``speakers.json``."""
    return {s.id: _speaker_record(s) for s in _speakers(seed, speakers, valid_fraction, test_fraction)}


def _speaker_record(s: _Speaker, langs: Sequence[str] = LANGS) -> Dict[str, Any]:
    voices = {lang: s.voice(lang) for lang in langs}
    return {"index": s.index, "voice": voices[langs[0]], "voices": voices, "variant": s.variant,
            "pitch": s.pitch, "range": s.range, "rate": s.rate, "split": s.split}


# --- one clip ------------------------------------------------------------------------------------


def _word_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def _trim(x: np.ndarray, sr: int) -> np.ndarray:
    """Cut leading/trailing silence (below 1% of the peak), keeping a 10 ms margin."""
    if x.size == 0:
        return x
    peak = float(np.max(np.abs(x)))
    if peak <= 0:
        return x[:0]
    active = np.flatnonzero(np.abs(x) > 0.01 * peak)
    margin = int(0.01 * sr)
    lo = max(0, int(active[0]) - margin)
    hi = min(x.size, int(active[-1]) + 1 + margin)
    return x[lo:hi]


def _noise(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "white":
        y = white
    else:
        spec = np.fft.rfft(white)
        f = np.arange(spec.size, dtype=np.float64)
        f[0] = 1.0
        exponent = 0.5 if kind == "pink" else 1.0  # amplitude ~ f^-1/2 (pink), f^-1 (brown)
        spec /= f ** exponent
        spec[0] = 0.0
        y = np.fft.irfft(spec, n)
    rms = float(np.sqrt(np.mean(y * y)))
    return y / rms if rms > 0 else y


_NOISE_KINDS = ("white", "pink", "brown")


def _make_clip(engine, spk: _Speaker, text: str, lang: str, k: int, cfg: Dict[str, Any]) -> np.ndarray:
    seed = cfg["seed"]
    sr = cfg["sample_rate"]
    n_clip = cfg["clip_samples"]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2, spk.index, _word_key(text), k]))
    # per-repetition jitter so that repetitions of a speaker are not identical
    rate = spk.rate
    pitch = spk.pitch
    if k > 0:
        rate = int(np.clip(rate + rng.integers(-10, 11), 80, _MAX_RATE))
        pitch = int(np.clip(pitch + rng.integers(-5, 6), 0, 100))
    gain_db = float(rng.uniform(-18.0, -1.0))
    kind = _NOISE_KINDS[int(rng.integers(len(_NOISE_KINDS)))]
    snr = cfg["snr_db"]
    snr_db = float(rng.uniform(snr[0], snr[1])) if snr is not None else None
    pos_u = float(rng.random())
    engine_seed = int(rng.integers(1, 2**31 - 1))

    g = math.gcd(sr, engine.sample_rate)
    up, down = sr // g, engine.sample_rate // g
    target = int(0.95 * n_clip)
    word = np.zeros(0)
    for _ in range(4):
        raw = engine.synth(text, spk.voice(lang), rate, pitch, spk.range, seed=engine_seed)
        word = resample_poly(_trim(raw.astype(np.float64), engine.sample_rate), up, down)
        if word.size <= target or rate >= _MAX_RATE:
            break
        rate = min(_MAX_RATE, int(math.ceil(rate * word.size / target * 1.05)))
    if word.size > n_clip:  # still too long: crop symmetrically
        lo = (word.size - n_clip) // 2
        word = word[lo:lo + n_clip]

    clip = np.zeros(n_clip, dtype=np.float64)
    peak = float(np.max(np.abs(word))) if word.size else 0.0
    if peak > 0:
        word = word / peak * 10.0 ** (gain_db / 20.0)
        offset = int(pos_u * (n_clip - word.size + 1))
        offset = min(offset, n_clip - word.size)
        clip[offset:offset + word.size] = word
        if snr_db is not None:
            power = float(np.mean(word * word))
            noise_rms = math.sqrt(power / 10.0 ** (snr_db / 10.0))
            clip += noise_rms * _noise(rng, n_clip, kind)
        top = float(np.max(np.abs(clip)))
        if top > 0.999:
            clip *= 0.999 / top
    else:
        log.warning("eSpeak NG produced no audio for %r with voice %r", text, spk.voice(lang))
    return clip


def _to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


# --- worker --------------------------------------------------------------------------------------


def _run_speaker(job: Tuple[_Speaker, List[Tuple[str, str, str]], Dict[str, Any]]) -> List[str]:
    """Generate all clips of one speaker; returns the relative paths written."""
    import soundfile as sf

    from .espeak import ESpeak

    spk, words, cfg = job
    engine = ESpeak()
    if engine.n_synth:
        raise RuntimeError("speaker jobs must run in a fresh process (see _run_jobs)")
    if not engine.can_seed:
        log.warning("this eSpeak NG library lacks espeak_ng_SetRandSeed: clips are not reproducible")
    out = Path(cfg["out_dir"])
    written = []
    # group by language to limit voice switches
    for folder, text, lang in sorted(words, key=lambda w: (w[2], w[0])):
        for k in range(cfg["per_speaker"]):
            clip = _make_clip(engine, spk, text, lang, k, cfg)
            rel = f"{folder}/{spk.id}_nohash_{k}.wav"
            # encode in memory and write once: much faster than letting libsndfile write the file
            buf = io.BytesIO()
            sf.write(buf, _to_pcm16(clip), cfg["sample_rate"], subtype="PCM_16", format="WAV")
            with open(out / rel, "wb") as f:
                f.write(buf.getvalue())
            written.append(rel)
    return written


# --- bookkeeping --------------------------------------------------------------------------------


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def _canon_langs(langs: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    if isinstance(langs, str):
        langs = [p for p in re.split(r"[,\s]+", langs) if p]
    langs = [str(l).strip().lower() for l in langs]
    bad = [l for l in langs if l not in LANGS]
    if bad or not langs:
        raise ValueError(f"unknown language(s) {bad or langs!r}; allowed: {', '.join(repr(l) for l in LANGS)}")
    return tuple(l for l in LANGS if l in langs)


def _check_args(langs, words, speakers, per_speaker, seed, sample_rate, clip_seconds,
                valid_fraction, test_fraction, snr_db, workers) -> Dict[str, Any]:
    langs = _canon_langs(langs)
    vocab = vocabulary(langs, words)

    def integer(name, v, lo, hi=None):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {v!r}")
        v = int(v)
        if v < lo or (hi is not None and v > hi):
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise ValueError(f"{name} must be {rng}, got {v}")
        return v

    speakers = integer("speakers", speakers, 3, 1_000_000)
    per_speaker = integer("per_speaker", per_speaker, 1, 1000)
    seed = integer("seed", seed, 0, 2**63 - 1)
    sample_rate = integer("sample_rate", sample_rate, 4000, 192000)
    try:
        clip_seconds = float(clip_seconds)
        valid_fraction = float(valid_fraction)
        test_fraction = float(test_fraction)
    except (TypeError, ValueError):
        raise ValueError("clip_seconds, valid_fraction and test_fraction must be numbers") from None
    if not (0.1 <= clip_seconds <= 30.0):
        raise ValueError(f"clip_seconds must be in [0.1, 30], got {clip_seconds}")
    for name, v in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not (0.0 <= v < 1.0):
            raise ValueError(f"{name} must be in [0, 1), got {v}")
    if valid_fraction + test_fraction >= 1.0:
        raise ValueError("valid_fraction + test_fraction must be < 1 (training needs speakers)")
    if snr_db is not None:
        if isinstance(snr_db, (int, float)):
            snr_db = (snr_db, snr_db)
        try:
            lo, hi = (float(v) for v in snr_db)
        except (TypeError, ValueError):
            raise ValueError(f"snr_db must be a (low, high) pair in dB or None, got {snr_db!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise ValueError(f"snr_db must be a finite (low, high) pair with low <= high, got {snr_db!r}")
        snr_db = [lo, hi]
    if workers is not None:
        workers = integer("workers", workers, 1)
    clip_samples = int(round(clip_seconds * sample_rate))
    return dict(langs=langs, vocab=vocab, speakers=speakers, per_speaker=per_speaker, seed=seed,
                sample_rate=sample_rate, clip_seconds=clip_seconds, clip_samples=clip_samples,
                valid_fraction=valid_fraction, test_fraction=test_fraction, snr_db=snr_db,
                workers=workers)


def _manifest_args(a: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION,
        "langs": list(a["langs"]),
        "words": sorted(a["vocab"]),
        "speakers": a["speakers"],
        "per_speaker": a["per_speaker"],
        "seed": a["seed"],
        "sample_rate": a["sample_rate"],
        "clip_seconds": a["clip_seconds"],
        "valid_fraction": a["valid_fraction"],
        "test_fraction": a["test_fraction"],
        "snr_db": a["snr_db"],
    }


def _espeak_info() -> Dict[str, Any]:
    try:
        from importlib.metadata import version

        return {"espeakng_loader": version("espeakng-loader")}
    except Exception:  # pragma: no cover - metadata missing
        return {}


# --- public entry point --------------------------------------------------------------------------


def generate(out_dir: Union[str, os.PathLike], langs: Union[str, Sequence[str]] = ("en",),
             speakers: int = 100, per_speaker: int = 1, seed: int = 0, sample_rate: int = 16000,
             clip_seconds: float = 1.0, valid_fraction: float = 0.1, test_fraction: float = 0.1,
             snr_db: Optional[Tuple[float, float]] = (5.0, 30.0), workers: Optional[int] = None,
             progress: bool = True, words: Optional[Sequence[str]] = None) -> Path:
    """Generate (or reuse) a synthetic speech-commands dataset in ``out_dir``; returns its path.

    Args:
        out_dir: target folder (created if needed).
        langs: languages, any of ``"en"`` (:data:`VOCAB_EN`) and ``"ru"`` (:data:`VOCAB_RU`).
        speakers: number of synthetic speakers (>= 3); each says every word.
        per_speaker: repetitions of each word per speaker (file suffix ``_nohash_<k>``).
        seed: seed of everything random; same arguments -> byte-identical files.
        sample_rate: output sample rate in Hz.
        clip_seconds: clip length; words longer than that are spoken faster (or cropped).
        valid_fraction, test_fraction: fractions of *speakers* held out for validation and test
            (at least one speaker each when the fraction is > 0).
        snr_db: (low, high) range of the signal-to-noise ratio of the added white/pink/brown
            noise, relative to the speech power; ``None`` adds no noise.
        workers: worker processes (``None``: ``os.cpu_count()``); does not change the output.
        progress: show a tqdm progress bar.
        words: optional subset or extension of the vocabulary (see :func:`vocabulary`).

    A finished dataset is recognised by its ``manifest.json``: calling again with the same
    arguments returns at once; different arguments raise ``ValueError``. A folder left by an
    interrupted run is completed by regenerating into it. Every speaker is synthesised in a new
    process (forked from a ``forkserver``; ``spawn`` on Windows), also when ``workers=1``, so a
    script calling this needs the usual ``if __name__ == "__main__":`` guard.
    """
    a = _check_args(langs, words, speakers, per_speaker, seed, sample_rate, clip_seconds,
                    valid_fraction, test_fraction, snr_db, workers)
    out = Path(out_dir)
    args = _manifest_args(a)
    vocab = a["vocab"]
    spks = _speakers(a["seed"], a["speakers"], a["valid_fraction"], a["test_fraction"])
    expected = [f"{folder}/{s.id}_nohash_{k}.wav"
                for folder in vocab for s in spks for k in range(a["per_speaker"])]

    manifest_path = out / _MANIFEST
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
            old_args = old["args"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(f"{manifest_path} is unreadable; delete {out} or choose another --out") from None
        diff = sorted(k for k in set(old_args) | set(args) if old_args.get(k) != args.get(k))
        if diff:
            detail = ", ".join(f"{k}: {old_args.get(k)!r} -> {args.get(k)!r}" for k in diff)
            raise ValueError(
                f"{out} already holds a synthetic dataset generated with different arguments "
                f"({detail}); choose another --out or delete the folder"
            )
        missing = [p for p in expected if not (out / p).is_file()]
        if not missing and old.get("files") == len(expected):
            log.info("cached: %s (%d files)", out, len(expected))
            return out
        log.warning("%s: %d of %d files are missing; regenerating", out, len(missing), len(expected))
        manifest_path.unlink()
    elif out.exists():
        if not out.is_dir():
            raise ValueError(f"{out} exists and is not a folder; choose another --out")
        if any(out.iterdir()) and not (out / _MARKER).exists():
            raise ValueError(
                f"{out} is not empty and was not created by the synthetic generator; "
                f"choose another --out or delete the folder"
            )

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / _MARKER, _dump({"args": args}))
    _remove_stale(out, set(expected))
    for folder in vocab:
        (out / folder).mkdir(exist_ok=True)

    t0 = time.perf_counter()
    cfg = {"out_dir": str(out), "seed": a["seed"], "sample_rate": a["sample_rate"],
           "clip_samples": a["clip_samples"], "per_speaker": a["per_speaker"],
           "snr_db": a["snr_db"]}
    word_list = [(folder, e["text"], e["lang"]) for folder, e in vocab.items()]
    jobs = [(s, word_list, cfg) for s in spks]
    n_workers = min(a["workers"] or os.cpu_count() or 1, len(jobs))
    log.info("generating %d clips (%d words x %d speakers x %d) into %s with %d worker(s)",
             len(expected), len(vocab), len(spks), a["per_speaker"], out, n_workers)
    _run_jobs(jobs, n_workers, len(expected), progress)
    elapsed = time.perf_counter() - t0

    split_of = {s.id: s.split for s in spks}
    valid = sorted(p for p in expected if split_of[_speaker_of(p)] == "valid")
    test = sorted(p for p in expected if split_of[_speaker_of(p)] == "test")
    atomic_write_text(out / "validation_list.txt", "".join(p + "\n" for p in valid))
    atomic_write_text(out / "testing_list.txt", "".join(p + "\n" for p in test))
    atomic_write_text(out / "labels.json", _dump(vocab))
    atomic_write_text(out / "speakers.json", _dump({s.id: _speaker_record(s, a["langs"]) for s in spks}))
    manifest = {"args": args, "files": len(expected),
                "splits": {"train": len(expected) - len(valid) - len(test),
                           "valid": len(valid), "test": len(test)},
                "info": _espeak_info()}
    atomic_write_text(manifest_path, _dump(manifest))
    log.info("wrote %d clips to %s in %.1f s", len(expected), out, elapsed)
    return out


def _speaker_of(rel: str) -> str:
    return rel.split("/", 1)[1].split("_nohash_", 1)[0]


def _remove_stale(out: Path, expected: set) -> None:
    """Remove clips of an interrupted earlier run (in a folder marked as ours) that the current
    arguments do not produce, so they cannot leak into the training split."""
    known_folders = set(vocabulary(LANGS)) | {p.split("/", 1)[0] for p in expected}
    removed = 0
    for folder in sorted(known_folders):
        d = out / folder
        if not d.is_dir():
            continue
        for f in d.iterdir():
            if _FILE_RE.match(f.name) and f"{folder}/{f.name}" not in expected and f.is_file():
                f.unlink()
                removed += 1
    if removed:
        log.info("removed %d stale clips of an interrupted run", removed)


def _run_jobs(jobs: List[Any], n_workers: int, total: int, progress: bool) -> None:
    """Run each speaker job in a fresh process (eSpeak NG output depends on what the process
    synthesised before), ``n_workers`` at a time."""
    from tqdm.auto import tqdm

    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        # the server imports these once; the processes forked from it start ready to work
        ctx.set_forkserver_preload(["__main__", __name__, f"{__package__}.espeak", "soundfile"])
    else:  # pragma: no cover - Windows
        ctx = mp.get_context("spawn")
    with tqdm(total=total, desc="synth", unit="clip", disable=None if progress else True, leave=False) as bar:
        with ctx.Pool(n_workers, maxtasksperchild=1) as pool:
            for done in pool.imap_unordered(_run_speaker, jobs, chunksize=1):
                bar.update(len(done))
