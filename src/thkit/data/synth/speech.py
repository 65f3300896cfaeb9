"""The subject's voice: the story spoken by piper's joe voice, sentence by sentence, and phone timings.

Speech is synthesised one sentence at a time (so we know what each stretch of audio says) with a
short pause between sentences, until there is enough for the requested length. Piper draws random
noise inside its network; its generator is seeded from the subject's seed before the voice is
loaded, and the voice is loaded afresh for each subject, so a seed always gives the same audio.

Phone timings come from pocketsphinx forced alignment of each sentence against its words (the
en-US acoustic model and CMU dictionary inside the pocketsphinx wheel): 10 ms resolution.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from thkit.data.synth.visemes import Phone

SAMPLE_RATE = 16000
SENTENCE_PAUSE = 0.2  # s of silence added between sentences
FRAME_SECONDS = 0.01  # pocketsphinx frame length


@dataclass(frozen=True)
class Speech:
    audio: np.ndarray  # [samples] float32 at SAMPLE_RATE: exactly the clip
    phones: list[Phone]  # every phone of the sentences spoken, SIL in the gaps; may run past the clip
    sentences: list[tuple[float, float, str]]  # start, end (s), text of each sentence that starts in the clip


def speak_sentences(
    sentences: tuple[str, ...],
    n_samples: int,
    seed: int,
    lookahead: float = 0.0,
    report: Callable[[float], None] | None = None,
) -> Speech | None:
    """The first n_samples of `sentences` spoken in a row, with phones; None if they run out first.

    Sentences are spoken until the audio reaches `lookahead` seconds past the clip, so that phones
    just after the clip's end (which shape the mouth just before it) are the same as in a longer
    clip: a short clip is then exactly the start of a long one. Each sentence is aligned on a
    second thread while the next one is synthesised. `report(seconds)` hears how much of the clip is done.
    """
    from concurrent.futures import ThreadPoolExecutor

    voice = load_voice(seed)
    aligner = Aligner()
    pause = np.zeros(int(SENTENCE_PAUSE * SAMPLE_RATE), np.float32)
    needed = n_samples + int(lookahead * SAMPLE_RATE)
    pieces: list[np.ndarray] = []
    aligned = []
    spoken: list[tuple[float, float, str]] = []
    position = 0
    with ThreadPoolExecutor(1) as pool:
        for sentence in sentences:
            audio = synthesize(voice, sentence)
            start = position / SAMPLE_RATE
            aligned.append((start, pool.submit(aligner.align, audio, sentence)))
            spoken.append((start, start + len(audio) / SAMPLE_RATE, sentence))
            pieces += [audio, pause]
            position += len(audio) + len(pause)
            if report is not None:
                report(min(position, n_samples) / SAMPLE_RATE)
            if position >= needed:
                break
        phones = [Phone(p.label, p.start + start, p.end + start, p.word, p.onset) for start, job in aligned for p in job.result()]
    if position < n_samples:
        return None
    end = n_samples / SAMPLE_RATE
    return Speech(
        audio=np.concatenate(pieces)[:n_samples],
        phones=_fill_silence(phones, position / SAMPLE_RATE),
        sentences=[s for s in spoken if s[0] < end],
    )


def load_voice(seed: int):
    """A fresh piper voice whose noise generator starts from `seed`.

    One thread that sleeps when idle: the network is small, and the other core renders frames.
    """
    import json

    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    from thkit.audio.tts import voice_files

    files = voice_files()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    onnxruntime.set_seed(seed)  # read when the session is created
    session = onnxruntime.InferenceSession(str(files.model), sess_options=options, providers=["CPUExecutionProvider"])
    return PiperVoice(config=PiperConfig.from_dict(json.loads(files.config.read_text(encoding="utf-8"))), session=session)


def synthesize(voice, text: str) -> np.ndarray:
    import soxr
    from piper import SynthesisConfig

    from thkit.audio.tts import VOLUME

    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, SynthesisConfig(volume=VOLUME))]
    audio = np.concatenate(chunks)
    return soxr.resample(audio, voice.config.sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def words_of(text: str) -> list[str]:
    """Dictionary words of a sentence: lower case, punctuation dropped."""
    return re.findall(r"[a-z']+", text.lower())


class Aligner:
    """pocketsphinx forced alignment, one sentence at a time."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(lm=None, loglevel="FATAL", bestpath=False)

    def align(self, audio: np.ndarray, text: str) -> list[Phone]:
        """Phones of `text` in `audio` (16 kHz), times in seconds from the start of `audio`."""
        words = words_of(text)
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
        decoder = self.decoder
        try:
            decoder.set_align_text(" ".join(words))
            self._decode(pcm)  # first pass: words
            decoder.set_alignment()
            self._decode(pcm)  # second pass: phones and states inside the words
            alignment = decoder.get_alignment()
        except RuntimeError:
            alignment = None
        if alignment is None:
            return self._spread(words, len(audio) / SAMPLE_RATE)
        phones = []
        for word in alignment:
            name = re.sub(r"\(\d+\)$", "", word.name)  # "carrying(2)": the second pronunciation
            name = "" if name.startswith("<") else name  # <sil>, <s>, </s>
            for index, phone in enumerate(word):
                start = phone.start * FRAME_SECONDS
                end = start + phone.duration * FRAME_SECONDS
                phones.append(Phone(_label(phone.name), start, end, name, onset=bool(name) and index == 0))
        return phones

    def _decode(self, pcm: bytes) -> None:
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()

    def _spread(self, words: list[str], seconds: float) -> list[Phone]:
        """Fallback when alignment fails: dictionary phones spread evenly over the sentence."""
        labels = [
            (word, label, index == 0)
            for word in words
            for index, label in enumerate((self.decoder.lookup_word(word) or "").split())
        ]
        step = seconds / max(len(labels), 1)
        return [Phone(_label(label), i * step, (i + 1) * step, word, onset) for i, (word, label, onset) in enumerate(labels)]


def _label(name: str) -> str:
    name = name.upper()
    return "SIL" if name in ("SIL", "+SPN+", "+NSN+", "<SIL>") else re.sub(r"\d", "", name)


def _fill_silence(phones: list[Phone], end: float) -> list[Phone]:
    """Phones with SIL in every gap (sentence pauses), covering [0, end]."""
    filled: list[Phone] = []
    cursor = 0.0
    for phone in phones:
        if phone.start > cursor + 1e-6:
            filled.append(Phone("SIL", cursor, phone.start))
        filled.append(phone)
        cursor = max(cursor, phone.end)
    if cursor < end - 1e-6:
        filled.append(Phone("SIL", cursor, end))
    return filled
