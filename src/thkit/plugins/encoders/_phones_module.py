"""The pocketsphinx side of the `phones` encoder: forced alignment, phone recognition, one-hot rows."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pocketsphinx
import torch
from scipy.ndimage import gaussian_filter1d
from torch import Tensor, nn

from thkit.core import ThkitError, Timeline
from thkit.plugins.encoders.phones import FPS, PHONES, SAMPLE_RATE, PhonesParams

PHONE_INDEX = {name: index for index, name in enumerate(PHONES)}  # anything else (+NSN+, +SPN+) is SIL
# pocketsphinx's window is 410 samples (25.625 ms) every 160: this left pad centres window k on row k.
WINDOW, HOP = 410, SAMPLE_RATE // int(FPS)
LEFT_PAD = (WINDOW - HOP) // 2
ALIGN_SEGMENT_FRAMES = 3000  # 30 s: phone-level alignment of one segment then needs about 250 MB
WORD = re.compile(r"[a-z0-9']+")

Span = tuple[str, int, int]  # phone, first frame, one past the last frame


class PhoneAlignmentWarning(UserWarning):
    """The transcript could not be aligned to the audio; phones were recognised instead."""


class PhonesModule(nn.Module):
    """No weights: pocketsphinx's bundled model does the work, so it is not differentiable."""

    def __init__(self, component) -> None:
        super().__init__()
        self.params: PhonesParams = component.params
        self._decoders: dict[str, pocketsphinx.Decoder] = {}  # made on first use, then reused

    def __getstate__(self) -> dict:
        """Copies and pickles leave the decoders behind (they cannot be pickled; they are remade)."""
        return {**self.__dict__, "_decoders": {}}

    def forward(self, inputs: dict[str, Tensor], timeline: Timeline) -> dict[str, Tensor]:
        audio = inputs["audio"]
        n_rows = timeline.frames(FPS)
        labels = self.labels(audio.detach().to("cpu", torch.float32).numpy(), self._transcript(timeline), n_rows)
        rows = np.eye(len(PHONES), dtype=np.float32)[labels]
        if self.params.smoothing_ms > 0 and n_rows > 0:
            rows = gaussian_filter1d(rows, sigma=self.params.smoothing_ms * float(FPS) / 1000, axis=0, mode="nearest")
            rows /= rows.sum(axis=1, keepdims=True)
        return {"features": torch.from_numpy(rows).to(audio.device)}

    def _transcript(self, timeline: Timeline) -> str | None:
        mode = self.params.mode
        text = self.params.text if self.params.text is not None else timeline.text
        if mode == "align" and not text:
            source = f" for {timeline.source}" if timeline.source else ""
            raise ThkitError(f"phones: mode: align needs a transcript{source}", hint="set `text:`, or use mode: auto")
        return None if mode == "recognize" else text

    def labels(self, audio: np.ndarray, text: str | None, n_rows: int) -> np.ndarray:
        """[n_rows] phone indices; SIL where nothing was decoded."""
        labels = np.zeros(n_rows, dtype=np.int64)
        if n_rows == 0:
            return labels
        pcm = (np.clip(np.concatenate([np.zeros(LEFT_PAD, np.float32), audio]), -1, 1) * 32767).astype(np.int16).tobytes()
        spans = self._align(pcm, text) if text else None
        if spans is None:
            spans = self._recognize(pcm)
        for phone, start, stop in spans:
            labels[start:stop] = PHONE_INDEX.get(phone, 0)
        return labels

    def _decoder(self, task: str) -> pocketsphinx.Decoder:
        if task not in self._decoders:
            if task == "align":
                # Lattice best-path word boundaries can give a phone one frame, which the second,
                # phone-level pass cannot align: keep the first pass's Viterbi boundaries.
                decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE, lm=None, bestpath=False, loglevel="FATAL")
            else:
                phone_lm = pocketsphinx.get_model_path("en-us/en-us-phone.lm.bin")
                decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE, lm=None, allphone=phone_lm, loglevel="FATAL")
            self._decoders[task] = decoder
        return self._decoders[task]

    def _align(self, pcm: bytes, text: str) -> list[Span] | None:
        """Phones of `text` aligned to the audio, or None (with a warning) when that cannot be done."""
        decoder = self._decoder("align")
        words = [word.strip("'") for word in WORD.findall(text.lower())]
        words = [word for word in words if word]
        unknown = sorted({word for word in words if decoder.lookup_word(word) is None})
        if not words or unknown:
            why = f"words not in the pronouncing dictionary: {', '.join(unknown)}" if unknown else "the transcript has no words"
            warnings.warn(f"phones: cannot align ({why}); recognising phones instead", PhoneAlignmentWarning, stacklevel=3)
            return None
        spans = None
        # A clip cut out of longer speech often cuts its first or last word: drop such a word and try again.
        for first, last in ((0, len(words)), (0, len(words) - 1), (1, len(words)), (1, len(words) - 1)):
            if last - first < 1 or (spans := _try_align(decoder, pcm, words[first:last])) is not None:
                break
        if spans is None:
            warnings.warn("phones: the transcript does not fit the audio; recognising phones instead", PhoneAlignmentWarning, stacklevel=3)
        return spans

    def _recognize(self, pcm: bytes) -> list[Span]:
        decoder = self._decoder("recognize")
        _decode(decoder, pcm)
        return [(segment.word, segment.start_frame, segment.end_frame + 1) for segment in decoder.seg() or ()]  # None: nothing decoded


def _try_align(decoder: pocketsphinx.Decoder, pcm: bytes, words: list[str]) -> list[Span] | None:
    try:
        return _align_in_segments(decoder, pcm, words)
    except RuntimeError:  # pocketsphinx's only signal that the words do not fit the audio
        return None


def _align_in_segments(decoder: pocketsphinx.Decoder, pcm: bytes, words: list[str]) -> list[Span] | None:
    """Word alignment of the whole clip, then phone alignment segment by segment.

    The phone-level pass needs memory growing with the square of the utterance (about 10 GB for
    10 minutes in one piece), so it runs on segments of at most ALIGN_SEGMENT_FRAMES, cut between
    the words the first pass placed, at a pause where there is one.
    """
    located = _word_alignment(decoder, pcm, " ".join(words))
    if located is None:
        return None
    spans = []
    for segment in _segments(located, ALIGN_SEGMENT_FRAMES):
        first, last = segment[0][1], segment[-1][2]
        text = " ".join(word for word, _, _ in segment if not _is_filler(word))
        if not text:
            continue  # a pause only: its rows stay SIL
        piece = pcm[first * HOP * 2 : (last * HOP + WINDOW - HOP) * 2]  # frames [first, last), 2 bytes a sample
        if _word_alignment(decoder, piece, text) is None:
            return None
        decoder.set_alignment()
        _decode(decoder, piece)
        alignment = decoder.get_alignment()
        if alignment is None:
            return None
        spans += [(phone.name, first + phone.start, first + phone.start + phone.duration) for word in alignment for phone in word]
    return spans


def _word_alignment(decoder: pocketsphinx.Decoder, pcm: bytes, text: str) -> list[Span] | None:
    """(word, first frame, one past the last) for the words of `text` and the pauses between them."""
    decoder.set_align_text(text)
    _decode(decoder, pcm)
    if decoder.hyp() is None:
        return None
    return [(segment.word, segment.start_frame, segment.end_frame + 1) for segment in decoder.seg()]


def _segments(located: list[Span], limit: int) -> list[list[Span]]:
    """Consecutive words in runs of at most `limit` frames (a longer word stays whole)."""
    runs: list[list[Span]] = [[]]
    for word in located:
        current = runs[-1]
        if current and word[2] - current[0][1] > limit:
            pauses = [index for index, (name, _, _) in enumerate(current) if index > 0 and _is_filler(name)]
            cut = pauses[-1] if pauses else len(current)
            runs[-1], tail = current[:cut], current[cut:]
            runs.append(tail)
        runs[-1].append(word)
    return [run for run in runs if run]


def _is_filler(word: str) -> bool:
    return word.startswith(("<", "[", "+"))  # <s>, </s>, <sil>, [NOISE], ...


def _decode(decoder: pocketsphinx.Decoder, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
