"""The `phones` encoder on piper TTS speech (offline voice), aligned and recognised by pocketsphinx."""

import warnings

import numpy as np
import pytest
import torch

from thkit.core import Audio, GraphContext, ThkitError, Timeline
from thkit.plugins.encoders._phones_module import PhoneAlignmentWarning
from thkit.plugins.encoders.phones import PHONES, PhonesEncoder, PhonesParams
from thkit.testing import check_component

SENTENCE = "Hello world, this is a test of speech synthesis. The quick brown fox jumps over the lazy dog."
# CMU dictionary pronunciations of the sentence, in order.
EXPECTED = (
    "HH AH L OW W ER L D DH IH S IH Z AH T EH S T AH V S P IY CH S IH N TH AH S AH S "
    "DH AH K W IH K B R AW N F AA K S JH AH M P S OW V ER DH AH L EY Z IY D AO G"
).split()


@pytest.fixture(scope="module")
def speech() -> torch.Tensor:
    from thkit.audio.tts import synthesize

    return torch.from_numpy(synthesize(SENTENCE, 16000))


@pytest.fixture(scope="module")
def module():
    return PhonesEncoder(PhonesParams(), {"audio": Audio(16000)}, GraphContext()).build()


def encode(module, audio: torch.Tensor, text: str | None = None) -> torch.Tensor:
    return module({"audio": audio}, Timeline(audio.shape[0], 16000, text=text))["features"]


def phone_sequence(features: torch.Tensor) -> list[str]:
    """Row labels with repeats collapsed and silence dropped."""
    labels = [PHONES[i] for i in features.argmax(dim=1).tolist()]
    return [p for i, p in enumerate(labels) if p != "SIL" and (i == 0 or p != labels[i - 1])]


def test_contract():
    check_component(PhonesEncoder)


def test_forced_alignment_gives_the_sentence_phones_in_order(module, speech):
    features = encode(module, speech, text=SENTENCE)
    assert features.shape == (speech.shape[0] // 160, 40)
    assert torch.equal(features.sum(dim=1), torch.ones(features.shape[0]))
    assert set(features.unique().tolist()) == {0.0, 1.0}
    assert phone_sequence(features) == EXPECTED  # so the first spoken phone is HH
    # "hello world" and "this" are separated by the comma's pause.
    labels = features.argmax(dim=1)
    end_of_world = int(np.flatnonzero((labels == PHONES.index("D")).numpy())[0])
    assert (labels[end_of_world : end_of_world + 60] == 0).any()


def test_alignment_in_windows_matches_one_pass(module, speech, monkeypatch):
    """Long clips are aligned window by window (time linear in the length); the seams cost almost nothing."""
    from thkit.plugins.encoders import _phones_module

    whole = encode(module, speech, text=SENTENCE)
    passes = []
    one_window = _phones_module._align_window
    monkeypatch.setattr(_phones_module, "_align_window", lambda *args: passes.append(1) or one_window(*args))
    monkeypatch.setattr(_phones_module, "ALIGN_WINDOW_FRAMES", 200)  # 2 s windows, the last 0.5 s redone
    monkeypatch.setattr(_phones_module, "ALIGN_TAIL_FRAMES", 50)
    windowed = encode(module, speech, text=SENTENCE)
    # At least two windows; a third when the second's words (the pace's guess, with a margin) do not
    # reach the end. piper's speech differs from call to call (its noise), so the count may too.
    assert len(passes) >= 2
    assert phone_sequence(windowed) == EXPECTED
    assert (windowed.argmax(dim=1) == whole.argmax(dim=1)).float().mean() > 0.95


def test_windows_cross_a_long_pause(module, speech, monkeypatch):
    """A pause longer than a window: windows of silence hold no words, and alignment carries on after it."""
    from thkit.plugins.encoders import _phones_module

    monkeypatch.setattr(_phones_module, "ALIGN_WINDOW_FRAMES", 300)
    monkeypatch.setattr(_phones_module, "ALIGN_TAIL_FRAMES", 60)
    hush = 1e-3 * torch.randn(8 * 16000, generator=torch.Generator().manual_seed(0))
    audio = torch.cat([speech, hush, speech])
    with warnings.catch_warnings():
        warnings.simplefilter("error", PhoneAlignmentWarning)  # aligned, not recognised
        labels = encode(module, audio, text=f"{SENTENCE} {SENTENCE}").argmax(dim=1)
    assert phone_sequence(torch.nn.functional.one_hot(labels, len(PHONES))) == EXPECTED + EXPECTED
    pause = slice(speech.shape[0] // 160 + 50, (speech.shape[0] + hush.shape[0]) // 160 - 50)
    assert (labels[pause] == 0).all()


def test_long_recognition_runs_in_pieces_in_worker_processes(speech, monkeypatch):
    """Pieces cut at quiet frames, recognised in two forked processes: the rows as in this one.

    Each piece is decoded as by a new decoder, whichever process decodes it and whatever it decoded
    before, so the two are equal.
    """
    from thkit.plugins.encoders import _phones_module

    def recognise(workers: int) -> torch.Tensor:
        built = PhonesEncoder(PhonesParams(mode="recognize", workers=workers), {"audio": Audio(16000)}, GraphContext()).build()
        return encode(built, speech).argmax(dim=1)

    whole = recognise(1)
    monkeypatch.setattr(_phones_module, "RECOGNIZE_PIECE_FRAMES", 300)
    monkeypatch.setattr(_phones_module, "QUIET_SEARCH_FRAMES", 100)
    pieces = _phones_module._quiet_cuts(np.zeros(speech.shape[0] + _phones_module.LEFT_PAD, np.int16), 300)
    assert len(pieces) >= 2 and all(last - first <= 300 for first, last in pieces)
    in_workers, here = recognise(2), recognise(1)
    assert torch.equal(in_workers, here)
    # A piece's first second is decoded before its cepstral mean settles: with 3 s pieces 65-75% of
    # rows agree with one pass (piper's speech differs from call to call), with the real 30 s pieces 96%.
    assert (in_workers == whole).float().mean() > 0.55


def test_recognition_without_a_transcript_finds_most_of_the_same_phones(module, speech):
    aligned = encode(module, speech, text=SENTENCE)
    recognised = encode(module, speech)
    assert recognised.shape == aligned.shape
    assert torch.equal(recognised.sum(dim=1), torch.ones(recognised.shape[0]))
    aligned_classes = set(phone_sequence(aligned))
    found = set(phone_sequence(recognised)) & aligned_classes
    assert len(found) > len(aligned_classes) / 2, sorted(found)
    agreement = (recognised.argmax(dim=1) == aligned.argmax(dim=1)).float().mean()
    # Rows labelled alike, silence included: 0.50-0.61 over piper's draws of this sentence.
    assert agreement > 0.45


def test_the_recognition_bigrams_are_the_phone_models_own():
    """Each history's bigrams are a distribution, and each is what the trigram model answers."""
    import pocketsphinx

    from thkit.plugins.encoders._phones_module import LOG10_PER_LOGMATH, _phone_bigram_arpa

    arpa = _phone_bigram_arpa()
    bigrams = arpa.split("\\2-grams:")[1].split("\\end\\")[0].strip().splitlines()
    assert len(bigrams) == (len(PHONES) + 1) ** 2  # histories <s> + phones, words phones + </s>
    totals: dict[str, float] = {}
    model = pocketsphinx.NGramModel.readfile(pocketsphinx.get_model_path("en-us/en-us-phone.lm.bin"))
    for line in bigrams:
        log10_probability, pair = line.split("\t")
        previous, word = pair.split()
        totals[previous] = totals.get(previous, 0.0) + 10 ** float(log10_probability)
        if previous == "AA" or word == "M":
            assert float(log10_probability) == pytest.approx(model.prob([word, previous]) * LOG10_PER_LOGMATH, abs=1e-5)
    assert set(totals) == {"<s>", *PHONES}
    assert all(total == pytest.approx(1.0, abs=1e-3) for total in totals.values()), totals


def test_the_text_param_wins_over_the_timeline_and_recognize_mode_ignores_both(speech):
    def run(text_param, timeline_text, mode="auto"):
        built = PhonesEncoder(PhonesParams(text=text_param, mode=mode), {"audio": Audio(16000)}, GraphContext()).build()
        return phone_sequence(encode(built, speech, timeline_text))

    assert run(SENTENCE, "something else entirely") == EXPECTED
    assert run(None, SENTENCE) == EXPECTED
    assert run(None, SENTENCE, mode="recognize") != EXPECTED


def test_unknown_words_fall_back_to_recognition_with_a_warning(module, speech):
    with pytest.warns(PhoneAlignmentWarning, match="not in the pronouncing dictionary: zorblax"):
        features = encode(module, speech, text="hello zorblax world")
    assert torch.equal(features, encode(module, speech))
    too_short = speech[:1600]  # 0.1 s cannot hold 60 phones of at least 3 frames each
    with pytest.warns(PhoneAlignmentWarning, match="does not fit the audio"):
        features = encode(module, too_short, text=SENTENCE)
    assert torch.equal(features, encode(module, too_short))


def test_align_mode_needs_a_transcript(speech):
    built = PhonesEncoder(PhonesParams(mode="align"), {"audio": Audio(16000)}, GraphContext()).build()
    with pytest.raises(ThkitError, match="needs a transcript"):
        encode(built, speech)


def test_smoothing_blurs_along_time_and_keeps_rows_distributions(speech):
    built = PhonesEncoder(PhonesParams(smoothing_ms=30), {"audio": Audio(16000)}, GraphContext()).build()
    soft = encode(built, speech, text=SENTENCE)
    assert torch.allclose(soft.sum(dim=1), torch.ones(soft.shape[0]), atol=1e-5)
    assert soft.min() >= 0
    blended = soft.max(dim=1).values < 0.99
    assert blended.float().mean() > 0.3  # phones last 3-20 rows; a 3-row blur reaches most of them
    assert phone_sequence(soft) == EXPECTED  # the blur moves boundaries a little, never the order


def test_rows_are_exact_for_any_length(module):
    for n_samples in (0, 100, 160, 4001, 16000):
        features = encode(module, torch.zeros(n_samples))
        assert features.shape == (n_samples // 160, 40)
        assert torch.equal(features.sum(dim=1), torch.ones(n_samples // 160))


def test_a_used_module_still_copies_and_pickles(module):
    import copy
    import pickle

    audio = torch.zeros(1600)
    encode(module, audio)  # makes a pocketsphinx decoder (which cannot be pickled), kept outside the module
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert torch.equal(encode(clone, audio), encode(module, audio))


def test_a_clip_that_cuts_its_last_word_still_aligns_the_words_before_it(module, speech):
    """Clips cut out of longer speech (a dataset's validation span) often end inside a word."""
    labels = encode(module, speech, text=SENTENCE).argmax(dim=1)
    dog_vowel = int(np.flatnonzero((labels == PHONES.index("AO")).numpy())[-1])  # the vowel of the last word, "dog"
    cut = speech[: (dog_vowel + 2) * 160]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PhoneAlignmentWarning)  # aligned, not recognised
        features = encode(module, cut, text=SENTENCE)
    assert phone_sequence(features)[: len(EXPECTED) - 3] == EXPECTED[:-3]  # all but "dog", which may be absorbed
