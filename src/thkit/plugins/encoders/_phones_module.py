"""The pocketsphinx side of the `phones` encoder: forced alignment, phone recognition, one-hot rows.

Both tasks are paced by pocketsphinx's acoustic scoring (phonetically tied mixtures), which costs
about the same for every 10 ms frame it scores, and by its search, so speed comes from scoring each
frame as few times as possible with as small a search as possible:

- Alignment is one pass of the grammar search over a grammar whose "words" are single phones: each
  transcript word is a chain of its dictionary phones (a branch per alternative pronunciation),
  with optional pauses (pocketsphinx's fillers, at its `silprob` and `fillprob`) between words. It
  gives phone boundaries in one pass where pocketsphinx's own route (`set_align_text`, then
  `set_alignment`) needs three: words over the whole clip, words again per segment, then phones
  inside the words. Its first pass alone costs time growing with the square of the clip's length,
  as the search scans every state of a grammar of the whole transcript every frame.
- Long audio is aligned in windows of ALIGN_WINDOW_FRAMES, one after another. A window's grammar
  holds a few more words than the pace of speech so far predicts (each word slows every frame a
  little; when the words run out before the audio does, the window is redone with twice as many),
  and may end after any phone, as the window's audio may end inside a word. What a window finds
  in its last ALIGN_TAIL_FRAMES is redone by the next, which starts where the last word (or pause)
  that starts before them does.
- TOPN Gaussians per codebook score a frame in alignment, not pocketsphinx's default 4: about 1.25x
  faster, and on the measure below 88.6% of rows alike instead of 89.4%.
- Recognition scores the acoustic model on every second frame only (`ds` 2; the search still steps
  every 10 ms, reusing the scores), decodes with the bigrams of pocketsphinx's phone trigram model
  (`_phone_bigram_arpa`), and weighs them at 3 instead of pocketsphinx's 6.5, a weight tuned for
  word decoding. Measured on 150 s of piper speech in three texts (a story, Harvard sentences, a
  talk), counting rows labelled as forced alignment of the transcript labels them, on one core:
  pocketsphinx's defaults 53.2% of rows (per text 53.2/52.7/53.9) at 20x real time; these settings
  59.5% (59.8/60.3/58.0) at 41x. The trigram model cost half the time (its lookups) for no
  accuracy here (57.3% with trigrams, 57.4% with bigrams, both at `ds` 2, TOPN 2, weight 3); the
  weight of 3 gives 6 points (59.3% at the defaults' speed otherwise); `ds` 2 costs under a point,
  `ds` 3 five.
- Recognition of long audio runs in pieces of up to RECOGNIZE_PIECE_FRAMES cut at the quietest
  frame near each piece's end, in `workers` forked processes: two free cores recognise about twice
  as fast. A piece starts with a fresh phone history and cepstral mean.
- Every utterance is decoded as by a new decoder (`_decode`), so results do not depend on what a
  decoder (or a worker) decoded before; a reused decoder otherwise labels about 1% of rows
  differently, and more of a short clip's.

Measured against pocketsphinx's own route on piper speech (77 s of varied text, benchmarks' 10
minutes): the same sequence of phones, except where a word has several dictionary pronunciations
(and, to, for, that, ...) and the two chose differently, 11 of 924 phones; of the phones both
place, 94.5% of boundaries agree within 20 ms and 98.6% within 40 ms (a video frame at 25 fps);
88.6% of rows are alike (90% over the 10 minutes, with the same 6762 phones). Recognition in 30 s
pieces labels 96% of rows as one pass does; for scale, recognition of the same audio at 0.7 times
the gain labels 89% alike.
"""

from __future__ import annotations

import math
import multiprocessing
import re
import tempfile
import warnings
from functools import cache
from pathlib import Path

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
ALIGN_WINDOW_FRAMES = 800  # 8 s of audio per alignment pass
ALIGN_TAIL_FRAMES = 100  # the last 1 s of a window (where it may have had to end inside a word) is redone
WORDS_MARGIN = 1.3  # a window's grammar holds this many times the words the pace predicts, plus WORDS_EXTRA
WORDS_EXTRA = 4
RECOGNIZE_PIECE_FRAMES = 3000  # 30 s per recognition piece
QUIET_SEARCH_FRAMES = 500  # a piece ends at the quietest frame of its last 5 s
TOPN = 2  # Gaussians per codebook in alignment (pocketsphinx's default: 4)
# Recognition: acoustic scores every second frame, and a language weight of 3 instead of
# pocketsphinx's 6.5 (tuned for words, not phones), with the phone model's bigrams. See the module docstring.
RECOGNIZE_SETTINGS = {"ds": 2, "lw": 3.0}
LOG10_PER_LOGMATH = math.log10(1.0001)  # NGramModel.prob answers in pocketsphinx's log base 1.0001
PHONE_WORD = {phone: f"ph_{phone.lower()}" for phone in PHONES[1:]}  # the alignment grammar's one-phone words
WORD_PHONE = {word: phone for phone, word in PHONE_WORD.items()}
FILLERS = {"<sil>": "silprob", "[NOISE]": "fillprob", "[SPEECH]": "fillprob"}  # pauses allowed between words
WORD = re.compile(r"[a-z0-9']+")

Span = tuple[str, int, int]  # phone, first frame, one past the last frame


class PhoneAlignmentWarning(UserWarning):
    """The transcript could not be aligned to the audio; phones were recognised instead."""


class PhonesModule(nn.Module):
    """No weights: pocketsphinx's bundled model does the work, so it is not differentiable."""

    def __init__(self, component) -> None:
        super().__init__()
        self.params: PhonesParams = component.params

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
        pcm = (np.clip(np.concatenate([np.zeros(LEFT_PAD, np.float32), audio]), -1, 1) * 32767).astype(np.int16)
        spans = self._align(pcm, text) if text else None
        if spans is None:
            spans = self._recognize(pcm)
        for phone, start, stop in spans:
            labels[start:stop] = PHONE_INDEX.get(phone, 0)
        return labels

    def _align(self, pcm: np.ndarray, text: str) -> list[Span] | None:
        """Phones of `text` aligned to the audio, or None (with a warning) when that cannot be done."""
        decoder = _decoder("align")
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
            if last - first < 1 or (spans := _align_in_windows(decoder, pcm, words[first:last])) is not None:
                break
        if spans is None:
            warnings.warn("phones: the transcript does not fit the audio; recognising phones instead", PhoneAlignmentWarning, stacklevel=3)
        return spans

    def _recognize(self, pcm: np.ndarray) -> list[Span]:
        pieces = _quiet_cuts(pcm, RECOGNIZE_PIECE_FRAMES)
        chunks = [pcm[first * HOP : (last - 1) * HOP + WINDOW].tobytes() for first, last in pieces]
        workers = min(self.params.workers, len(chunks))
        if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            # Forked workers start at once and inherit everything loaded here; they touch no torch.
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                results = pool.map(_recognize_piece, chunks, chunksize=1)
        else:
            results = [_recognize_piece(chunk) for chunk in chunks]
        return [
            (phone, first + start, first + stop)
            for (first, _), spans in zip(pieces, results, strict=True)
            for phone, start, stop in spans
        ]


@cache
def _decoder(task: str) -> pocketsphinx.Decoder:
    """This process's decoder for `task` ('align' or 'recognize'), made on first use (about 0.2 s), then reused."""
    if task == "recognize":
        with tempfile.TemporaryDirectory(prefix="thkit-phones-") as folder:
            bigrams = Path(folder) / "phone-bigram.arpa"
            bigrams.write_text(_phone_bigram_arpa())
            return pocketsphinx.Decoder(samprate=SAMPLE_RATE, lm=None, allphone=str(bigrams), loglevel="FATAL", **RECOGNIZE_SETTINGS)
    # Pauses and alternative pronunciations are written into each grammar (_phone_grammar), not
    # added by pocketsphinx, which would put them between the one-phone words inside a word too.
    # The Viterbi path is the result (no lattice best path, which costs a tenth of the decoding).
    decoder = pocketsphinx.Decoder(
        samprate=SAMPLE_RATE, lm=None, topn=TOPN, bestpath=False, fsgusefiller=False, fsgusealtpron=False, loglevel="FATAL"
    )
    for index, (phone, word) in enumerate(PHONE_WORD.items()):
        decoder.add_word(word, phone, update=index == len(PHONE_WORD) - 1)  # rebuild the search's tables once
    return decoder


def _phone_bigram_arpa() -> str:
    """pocketsphinx's phone trigram model cut to its bigrams, as ARPA text: P(phone | previous phone)
    for every pair, as the trigram model itself answers with a one-phone history.

    Written here because neither pocketsphinx nor its model files offer one, and its own ARPA
    writer prints this binary model's probabilities wrongly (as 1e30-sized numbers). Every pair is
    listed, so no back-off weights are needed.
    """
    model = pocketsphinx.NGramModel.readfile(pocketsphinx.get_model_path("en-us/en-us-phone.lm.bin"))
    words = [*PHONES, "</s>"]  # what the model knows, but for <s> (a history only) and <UNK>
    histories = ["<s>", *PHONES]
    lines = ["\\data\\", f"ngram 1={len(words) + 1}", f"ngram 2={len(histories) * len(words)}", "", "\\1-grams:", "-99\t<s>\t0"]
    lines += [f"{model.prob([word]) * LOG10_PER_LOGMATH:.5f}\t{word}\t0" for word in words]
    lines += ["", "\\2-grams:"]
    # prob([word, previous]): the word first, then its history, most recent first (sphinxbase's order)
    lines += [f"{model.prob([word, previous]) * LOG10_PER_LOGMATH:.5f}\t{previous} {word}" for previous in histories for word in words]
    return "\n".join([*lines, "", "\\end\\", ""])


def _recognize_piece(pcm: bytes) -> list[Span]:
    decoder = _decoder("recognize")
    _decode(decoder, pcm)
    return [(segment.word, segment.start_frame, segment.end_frame + 1) for segment in decoder.seg() or ()]  # None: nothing decoded


def _align_in_windows(decoder: pocketsphinx.Decoder, pcm: np.ndarray, words: list[str]) -> list[Span] | None:
    """Phones of `words` over the whole clip, window by window; None when the words do not fit the audio."""
    n_frames = _frames(len(pcm))
    pace = len(words) / max(n_frames, 1)  # the clip's words per frame
    spans: list[Span] = []
    start, done = 0, 0  # the window's first frame; the words aligned before it
    count = _words_for_window(pace)
    while True:
        count = min(count, len(words) - done)
        final = n_frames - start <= ALIGN_WINDOW_FRAMES or done + count == len(words)
        stop = n_frames if final else start + ALIGN_WINDOW_FRAMES
        grammar, spellings = _phone_grammar(decoder, words[done : done + count], final)
        located = _align_window(decoder, pcm[start * HOP : (stop - 1) * HOP + WINDOW], grammar)
        if located is None:
            return None
        if final:
            return spans + [(phone, start + first, start + last) for phone, first, last in located if phone in PHONE_WORD]
        phones = [phone for phone, _, _ in located if phone in PHONE_WORD]
        ends = _word_ends(phones, spellings)
        if ends.get(len(phones)) == count:
            count *= 2  # the words ran out before the audio did: speech faster than the pace predicted
            continue
        cut = _window_cut(located, ends, stop - start - ALIGN_TAIL_FRAMES)
        if cut is None:
            return None
        spans += [(phone, start + first, start + last) for phone, first, last in located if last <= cut[0] and phone in PHONE_WORD]
        start, done = start + cut[0], done + cut[1]
        count = _words_for_window(max(pace, cut[1] / cut[0]))  # the last window's pace, unless slower


def _words_for_window(pace: float) -> int:
    """Words for a window's grammar: more than `pace` predicts, but few, as every word slows every frame."""
    return int(pace * ALIGN_WINDOW_FRAMES * WORDS_MARGIN) + WORDS_EXTRA


def _align_window(decoder: pocketsphinx.Decoder, pcm: np.ndarray, grammar: pocketsphinx.FsgModel) -> list[Span] | None:
    """Phones and pauses (fillers) of one stretch of audio, or None when the grammar does not fit it."""
    decoder.add_fsg("phones", grammar)
    decoder.activate_search("phones")
    try:
        _decode(decoder, pcm.tobytes())
    except RuntimeError:  # pocketsphinx's signal that the words do not fit the audio
        return None
    if decoder.hyp() is None:
        return None
    return [(WORD_PHONE.get(segment.word, segment.word), segment.start_frame, segment.end_frame + 1) for segment in decoder.seg()]


def _phone_grammar(decoder: pocketsphinx.Decoder, words: list[str], final: bool) -> tuple[pocketsphinx.FsgModel, list[list[list[str]]]]:
    """The finite-state grammar of `words` spelled in one-phone words, and each word's pronunciations.

    State 0 starts the grammar and every word ends in a state of its own, where pauses may follow.
    Unless `final`, the grammar may end after any phone (a null transition to the last state, which
    has no pause: the path must then end at once), as the audio of a window may end inside a word.
    """
    transitions: list[tuple] = []
    spellings = [_pronunciations(decoder, word) for word in words]
    ends = [0]
    states = 1
    for pronunciations in spellings:
        end, states = states, states + 1
        for phones in pronunciations:
            source = ends[-1]
            for index, phone in enumerate(phones):
                target = end if index == len(phones) - 1 else states
                states += target != end
                transitions.append((source, target, 1.0, PHONE_WORD[phone]))
                source = target
        ends.append(end)
    if not final:
        transitions += [(state, ends[-1], 1.0) for state in range(1, states) if state != ends[-1]]
    grammar = decoder.create_fsg("phones", 0, ends[-1], transitions)
    for end in ends if final else ends[:-1]:  # no pause after an early end: it would stand in for speech
        for filler, probability in FILLERS.items():
            grammar.add_silence(filler, end, decoder.config[probability])
    return grammar, spellings


def _pronunciations(decoder: pocketsphinx.Decoder, word: str) -> list[list[str]]:
    """The dictionary's pronunciations of `word` ("word", "word(2)", ...), as lists of phones."""
    spellings, variant = [], 1
    while (phones := decoder.lookup_word(word if variant == 1 else f"{word}({variant})")) is not None:
        spellings.append(phones.split())
        variant += 1
    return spellings


def _word_ends(phones: list[str], spellings: list[list[list[str]]]) -> dict[int, int]:
    """{n: k} where the first n phones spell out the first k words exactly (in one of their pronunciations)."""
    ends, reachable = {0: 0}, {0}
    for count, pronunciations in enumerate(spellings, start=1):
        reachable = {at + len(p) for at in reachable for p in pronunciations if phones[at : at + len(p)] == p}
        if not reachable:
            break
        for at in reachable:
            ends.setdefault(at, count)
    return ends


def _window_cut(located: list[Span], ends: dict[int, int], limit: int) -> tuple[int, int] | None:
    """Where the next window starts (a frame before `limit`), and how many words lie before it.

    At the start of the last word or pause that starts before `limit` (but after the window's
    first frame); in a pause from the window's start to past `limit`, at `limit`. None otherwise.
    """
    cut = None
    spoken = 0  # phones before the current segment
    for name, first, _ in located:
        if first >= limit:
            break
        words = ends.get(spoken)
        if words is not None and first > 0:
            cut = (first, words)
        spoken += name in PHONE_WORD
    if cut is None and located and located[0][0] not in PHONE_WORD and located[0][2] >= limit:
        cut = (limit, 0)
    return cut


def _frames(n_samples: int) -> int:
    return max(0, (n_samples - WINDOW) // HOP + 1)


def _quiet_cuts(pcm: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """[first, last) frame ranges of at most `limit` frames covering the clip, cut at quiet frames."""
    n_frames = max(1, _frames(len(pcm)))
    energy = np.square(pcm[: n_frames * HOP].astype(np.float32)).reshape(-1, HOP).sum(axis=1)
    pieces, first = [], 0
    while n_frames - first > limit:
        search = energy[first + limit - QUIET_SEARCH_FRAMES : first + limit]
        last = first + limit - QUIET_SEARCH_FRAMES + int(np.argmin(search))
        pieces.append((first, last))
        first = last
    return [*pieces, (first, n_frames)]


def _decode(decoder: pocketsphinx.Decoder, pcm: bytes) -> None:
    """Decode one utterance as a new decoder would: the features' state (the running cepstral mean
    and more) is reset, so a result does not depend on what the decoder heard before."""
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
