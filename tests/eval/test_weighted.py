"""LPIPS, FID and LSE-D/LSE-C with weight files the tests build from random networks.

Random weights cannot say whether a score is good, so the tests pin what does not depend on them:
the loaders accept the published layouts and reject others by file name, identical inputs score
zero, the scores are finite, LSE depends on the audio, the offset search finds a planted offset,
and the MFCCs are python_speech_features' to the digit.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from thkit.core.errors import ThkitError
from thkit.data.synth.portrait import photo
from thkit.eval import _inception, _syncnet
from thkit.eval.weighted import (
    SyncScores,
    fid_score,
    inception_file,
    load_inception,
    load_syncnet,
    lpips_score,
    lse_scores,
    sync_scores,
    weighted_metrics,
)
from tests.train.conftest import save_random_lpips_weights

RATE = 16000


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A weights folder holding every network, randomly initialised, in the published layouts."""
    from torchvision.models import inception_v3

    folder = tmp_path_factory.mktemp("weights")
    save_random_lpips_weights(folder)
    torch.manual_seed(0)
    inception = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    for module in inception.modules():
        if isinstance(module, nn.Conv2d):  # keeps activations near unit scale through 90 layers
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    (folder / "fid").mkdir()
    torch.save(inception.state_dict(), folder / "fid" / "pt_inception-2015-12-05-6726825d.pth")
    syncnet = _syncnet.SyncNet()
    with torch.no_grad():
        # One bias for both towers' last layers puts the two embeddings near each other and far from
        # the zero vectors the offset search pads with, so the best offset is one that pairs windows;
        # a 10x louder audio head (at random, its embeddings are 8x smaller than the video's) makes
        # the distances depend on what is heard.
        shared = 30 * torch.randn(_syncnet.EMBEDDING) / math.sqrt(_syncnet.EMBEDDING)
        syncnet.netfcaud[3].bias.copy_(shared)
        syncnet.netfclip[3].bias.copy_(shared)
        syncnet.netfcaud[3].weight.mul_(10)
    (folder / "syncnet").mkdir()
    torch.save(syncnet.state_dict(), folder / "syncnet" / "syncnet_v2.model")
    return folder


@pytest.fixture
def with_weights(weights, monkeypatch) -> Path:
    monkeypatch.setenv("THKIT_WEIGHTS", str(weights))
    return weights


@pytest.fixture
def no_weights(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("THKIT_WEIGHTS", str(tmp_path / "weights"))
    return tmp_path / "weights"


@pytest.fixture
def small_inception(monkeypatch):
    """Inception at 75 px, its smallest input, instead of 299: the same network, 16x less work."""
    monkeypatch.setattr(_inception, "SIZE", 75)


def faces(n: int) -> np.ndarray:
    """n frames [n, 192, 192, 3] of the astronaut's face (dlib finds it), shifted by a pixel or two."""
    crop = photo()[40:232, 130:322]
    return np.stack([np.roll(crop, k % 3, axis=1) for k in range(n)])


def speech_like(seconds: float, rate: int = RATE) -> np.ndarray:
    """Noise in 4 Hz bursts, so that neighbouring 0.2 s windows hear different things."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * rng.standard_normal(len(t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2).astype(np.float32)


# ---- missing weights ----


def test_missing_weights_are_skipped_with_where_to_put_them(no_weights):
    frames = faces(3)
    metrics = weighted_metrics(frames, frames, speech_like(0.5), RATE, 25)
    syncnet = f"skipped: put syncnet_v2.model at {no_weights / 'syncnet' / 'syncnet_v2.model'}"
    assert metrics == {
        "lpips": f"skipped: put torchvision's alexnet-owt-7be5be79.pth at {no_weights / 'lpips' / 'alexnet.pth'}"
        f" and put lpips' weights/v0.1/alex.pth at {no_weights / 'lpips' / 'alex.pth'}",
        "fid": f"skipped: put pt_inception-2015-12-05-6726825d.pth at {no_weights / 'fid' / 'pt_inception-2015-12-05-6726825d.pth'}",
        "lse_d": syncnet,
        "lse_c": syncnet,
    }


def test_loaders_without_weights_raise_with_a_hint(no_weights):
    with pytest.raises(ThkitError) as caught:
        load_syncnet()
    assert str(no_weights / "syncnet" / "syncnet_v2.model") in caught.value.format()
    with pytest.raises(ThkitError) as caught:
        load_inception()
    assert str(no_weights / "fid" / "pt_inception-2015-12-05-6726825d.pth") in caught.value.format()


# ---- LPIPS ----


def test_lpips_is_zero_on_identical_frames_and_positive_otherwise(with_weights):
    frames = faces(3)
    assert lpips_score(frames, frames) == 0.0
    other = lpips_score(frames, frames[:, ::-1])
    assert math.isfinite(other) and other > 0


def test_lpips_names_a_corrupt_weights_file(with_weights, tmp_path, monkeypatch):
    (tmp_path / "lpips").mkdir()
    (tmp_path / "lpips" / "alexnet.pth").write_bytes(b"not a torch file")
    (tmp_path / "lpips" / "alex.pth").write_bytes((with_weights / "lpips" / "alex.pth").read_bytes())
    monkeypatch.setenv("THKIT_WEIGHTS", str(tmp_path))
    with pytest.raises(ThkitError, match="alexnet.pth: not a readable weights file"):
        lpips_score(faces(2), faces(2))


# ---- FID ----


def test_fid_is_zero_on_identical_sets_and_positive_on_different_ones(with_weights, small_inception):
    frames = faces(4)
    frames[2:] = frames[2:, ::-1]  # four different frames
    assert fid_score(frames, frames) == pytest.approx(0.0, abs=1e-3)
    noise = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    different = fid_score(frames, noise)  # sets of different sizes and resolutions are fine
    assert math.isfinite(different) and different > 1.0


def test_fid_needs_two_frames_per_set(with_weights):
    assert fid_score(faces(1), faces(3)) == "skipped: FID needs at least 2 frames in each video"


def test_each_inception_file_gets_its_own_network(with_weights, tmp_path, monkeypatch, small_inception):
    """pytorch-fid's file gets the TensorFlow graph's pooling, torchvision's file torchvision's."""
    image = torch.from_numpy(faces(1)).permute(0, 3, 1, 2)
    tensorflow = load_inception()
    assert inception_file() == (with_weights / "fid" / "pt_inception-2015-12-05-6726825d.pth", "tensorflow")
    state = torch.load(with_weights / "fid" / "pt_inception-2015-12-05-6726825d.pth", weights_only=True)
    state = {**state, "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}  # torchvision's classifier
    state |= {f"AuxLogits.{name}": value for name, value in nn.Linear(768, 1000).state_dict().items()}  # and aux head
    (tmp_path / "fid").mkdir()
    torch.save(state, tmp_path / "fid" / "inception_v3_google-0cc3c7bd.pth")
    monkeypatch.setenv("THKIT_WEIGHTS", str(tmp_path))
    assert inception_file() == (tmp_path / "fid" / "inception_v3_google-0cc3c7bd.pth", "torchvision")
    torchvision = load_inception()
    with torch.no_grad():
        a, b = tensorflow(image), torchvision(image)
    assert a.shape == b.shape == (1, 2048)
    assert not torch.allclose(a, b)  # same weights, different pooling


@pytest.mark.parametrize("name", ["pt_inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05.safetensors"])
def test_fid_names_a_corrupt_weights_file(no_weights, name):
    (no_weights / "fid").mkdir(parents=True)
    (no_weights / "fid" / name).write_bytes(b"\x00" * 64)
    with pytest.raises(ThkitError, match=f"{name}: not a readable weights file"):
        load_inception()


def test_fid_names_a_file_of_another_network(no_weights):
    (no_weights / "fid").mkdir(parents=True)
    torch.save(_syncnet.SyncNet().state_dict(), no_weights / "fid" / "pt_inception-2015-12-05.pth")
    with pytest.raises(ThkitError, match=r"pt_inception-2015-12-05.pth: not Inception-v3 weights: \d+ tensors missing"):
        load_inception()


# ---- SyncNet: network, loader, inputs ----


def test_syncnet_has_the_published_layout():
    net = _syncnet.SyncNet().eval()
    shapes = {name: tuple(value.shape) for name, value in net.state_dict().items()}
    assert shapes["netcnnaud.0.weight"] == (64, 1, 3, 3)
    assert shapes["netcnnaud.18.weight"] == (512, 256, 5, 4)
    assert shapes["netcnnlip.0.weight"] == (96, 3, 5, 7, 7)
    assert shapes["netcnnlip.18.weight"] == (512, 256, 1, 6, 6)
    assert shapes["netfcaud.3.weight"] == shapes["netfclip.3.weight"] == (1024, 512)
    assert len(shapes) == 2 * (6 * 7 + 9)  # per tower 6 conv (2 tensors) + BN (5); per head 2 linear + 1 BN
    with torch.no_grad():
        assert net.audio(torch.zeros(2, 1, 13, 20)).shape == (2, 1024)
        assert net.video(torch.zeros(1, 3, 5, 224, 224)).shape == (1, 1024)


def test_syncnet_loader_names_corrupt_and_foreign_files(no_weights):
    path = no_weights / "syncnet" / "syncnet_v2.model"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with pytest.raises(ThkitError, match="syncnet_v2.model: not a readable weights file"):
        load_syncnet()
    torch.save({"netcnnaud.0.weight": torch.zeros(3)}, path)
    with pytest.raises(ThkitError, match="syncnet_v2.model: not SyncNet .* weights: .* missing .*; 1 tensors of another shape"):
        load_syncnet()
    torch.save([torch.zeros(3)], path)
    with pytest.raises(ThkitError, match="syncnet_v2.model: holds list, not a state dict"):
        load_syncnet()


def test_syncnet_loads_a_file_without_batch_norm_counters(no_weights):
    """Files saved before PyTorch 0.4.1, as syncnet_v2.model may be, hold no `num_batches_tracked`."""
    state = {name: value for name, value in _syncnet.SyncNet().state_dict().items() if not name.endswith("num_batches_tracked")}
    (no_weights / "syncnet").mkdir(parents=True)
    torch.save(state, no_weights / "syncnet" / "syncnet_v2.model")
    loaded = load_syncnet().state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in state.items())


def test_mfcc_matches_python_speech_features():
    """Reference values: python_speech_features 0.6, `mfcc(int16 samples, 16000)`, frames 0 and 5."""
    t = np.arange(1600) / RATE
    samples = _syncnet.int16_scaled(0.5 * np.sin(2 * np.pi * 300 * t) * np.exp(-5 * t))
    cepstra = _syncnet.mfcc(samples)
    assert cepstra.shape == (13, 9)  # 1 + ceil((1600 - 400) / 160)
    expected = [
        [19.6429, 20.6697, 8.9856, -0.3432, -9.5914, -18.603, -24.779, -28.8301, -28.9364, -26.2742, -20.0997, -13.4352, -6.6417],
        [19.1482, 21.0802, 9.5281, 0.3069, -8.9352, -17.9508, -24.1223, -28.1077, -28.289, -25.6315, -19.6789, -13.0519, -6.1915],
    ]
    np.testing.assert_allclose(cepstra[:, [0, 5]].T, expected, atol=1e-3)


def test_face_crop_is_the_references_window_padded_with_grey():
    frame = np.full((1, 100, 100, 3), 200, dtype=np.uint8)
    frame[0, :, :, 0] = 10  # red channel: the crop is BGR, so it ends up last
    crop = _syncnet.face_crops(frame, np.array([[50.0, 50.0, 40.0]]))[0]
    assert crop.shape == (224, 224, 3)
    # x from 50 - 56 to 50 + 56, y from 50 - 40 to 50 + 72: the frame ends at 100, grey below and beside
    assert (crop[5, 112] == [200, 200, 10]).all()
    assert (crop[-3, 112] == [110, 110, 110]).all()
    assert (crop[100, 2] == [110, 110, 110]).all()


def test_windows_pair_five_frames_with_twenty_mfcc_frames():
    """Window i: 25 fps frames i..i+4 (through `picks`) with MFCC frames 4i..4i+19; n frames give
    n - 5 windows, as the reference counts them, whatever the batch size."""
    torch.manual_seed(0)
    net = _syncnet.SyncNet().eval()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (10, 48, 48, 3), dtype=np.uint8)
    picks = np.array([0, 2, 3, 5, 6, 8, 9])  # e.g. 35 fps to 25
    boxes = np.tile([24.0, 24.0, 15.0], (7, 1))
    cepstra = rng.standard_normal((13, 40))
    video, audio = _syncnet.embeddings(net, frames, picks, boxes, cepstra, "cpu", batch=1)
    assert video.shape == audio.shape == (2, 1024)
    crops = _syncnet.face_crops(frames[picks], boxes)
    with torch.no_grad():
        for i in range(2):
            volume = torch.from_numpy(crops[i : i + 5]).permute(3, 0, 1, 2).float()[None]
            torch.testing.assert_close(video[i], net.video(volume)[0])
            torch.testing.assert_close(audio[i], net.audio(torch.from_numpy(cepstra[:, 4 * i : 4 * i + 20]).float()[None, None])[0])


# ---- LSE ----


def test_offset_search_finds_a_planted_offset():
    """Audio embeddings that are the video's, 3 windows late: the best offset is -3 (audio lags),
    LSE-D is the mean distance there, LSE-C the median over offsets minus it."""
    rng = np.random.default_rng(0)
    video = torch.from_numpy(rng.standard_normal((40, 8))).float()
    audio = torch.cat([torch.from_numpy(rng.standard_normal((3, 8))).float(), video[:-3]]) + 0.01
    scores = sync_scores(video, audio)
    assert scores.offset == -3
    padded = torch.cat([torch.zeros(15, 8), audio, torch.zeros(15, 8)])
    by_offset = torch.stack([torch.nn.functional.pairwise_distance(video, padded[15 - k : 15 - k + 40]).mean() for k in range(15, -16, -1)])
    assert scores.distance == pytest.approx(float(by_offset.min()))
    assert scores.distance == pytest.approx(float(by_offset[15 + 3]))  # index of offset -3
    assert scores.confidence == pytest.approx(float(by_offset.median() - by_offset.min()))
    assert scores.confidence > 0


def test_lse_is_finite_and_depends_on_the_audio(with_weights):
    frames, audio = faces(12), speech_like(12 / 25)
    aligned = lse_scores(frames, audio, RATE, 25)
    assert isinstance(aligned, SyncScores)
    assert math.isfinite(aligned.distance) and math.isfinite(aligned.confidence) and aligned.confidence >= 0
    delayed = np.concatenate([np.zeros(5 * RATE // 25, np.float32), audio[: -5 * RATE // 25]])  # 5 frames late
    shifted = weighted_metrics(frames, None, delayed, RATE, 25)  # cross-driven: LSE only
    assert set(shifted) == {"lse_d", "lse_c"}
    assert abs(shifted["lse_d"] - aligned.distance) > 0.01


def test_lse_resamples_and_refuses_a_clip_under_six_frames(with_weights):
    """10 frames at 50 fps are 5 at 25 fps: one window short. Nothing is loaded to find out."""
    assert lse_scores(faces(10), speech_like(0.2, 48000), 48000, 50) == "skipped: LSE needs at least 0.24 s of video and audio, got 5 frames at 25 fps"


def test_lse_without_a_face_is_skipped(with_weights):
    noise = np.random.default_rng(0).integers(0, 256, (8, 96, 96, 3), dtype=np.uint8)
    assert lse_scores(noise, speech_like(8 / 25), RATE, 25) == "skipped: no face found in the predicted video (dlib)"
