"""The `hubert` encoder, on tiny random HuBERT / wav2vec2 checkpoints saved to disk (no hub)."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from thkit.core import Audio, GraphContext, PortMismatch, ThkitError, Timeline
from thkit.plugins.encoders.hubert import HubertEncoder, HubertParams
from thkit.testing import check_component

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    # Two convolutions with HuBERT's 400-sample receptive field and 320-sample step (theirs has
    # seven, 512 wide: slow on a CPU and no different for what is tested here).
    conv_dim=(16, 16),
    conv_kernel=(10, 79),
    conv_stride=(5, 64),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
)
# Base-size models normalise their first convolution over time (group norm) and put layer norms
# after each block; large ones use per-frame layer norms and pre-norm ("stable") blocks.
FLAVOURS = {
    "base-like": dict(feat_extract_norm="group", do_stable_layer_norm=False),
    "large-like": dict(feat_extract_norm="layer", do_stable_layer_norm=True),
}


def save_tiny(folder: Path, family: str = "hubert", *, do_normalize: bool | None = None, **overrides) -> Path:
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config_class, model_class = {"hubert": (HubertConfig, HubertModel), "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model)}[family]
    torch.manual_seed(0)
    model_class(config_class(**{**TINY, **overrides})).save_pretrained(folder)
    if do_normalize is not None:
        Wav2Vec2FeatureExtractor(do_normalize=do_normalize).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hubert")
    return {name: save_tiny(root / name, **config) for name, config in FLAVOURS.items()}


def encoder(**params) -> HubertEncoder:
    """float32 unless a test asks otherwise: the default (auto) is bfloat16 on CPUs that have it."""
    return HubertEncoder(HubertParams(**{"precision": "float32", **params}), {"audio": Audio(16000)}, GraphContext())


def features(audio: torch.Tensor, **params) -> torch.Tensor:
    module = encoder(**params).build().eval()
    with torch.inference_mode():
        return module({"audio": audio}, Timeline(audio.shape[0], 16000))["features"]


def speechlike(seconds: float, seed: int = 0) -> torch.Tensor:
    """Noise with a slow syllable-rate envelope, so that frames differ in level as speech does."""
    generator = torch.Generator().manual_seed(seed)
    n = int(seconds * 16000)
    envelope = 0.5 + 0.5 * torch.sin(torch.arange(n) * (2 * torch.pi * 4 / 16000)) ** 2
    return 0.1 * envelope * torch.randn(n, generator=generator)


def test_contract(tiny):
    check_component(HubertEncoder, params={"weights": str(tiny["base-like"])})


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_clip_within_one_pass_is_exactly_the_transformers_model(tiny, flavour):
    """Same numbers as HubertModel on the centred padding, for the last and the intermediate layers.

    6 s: the convolutions run in 5 s blocks, and the whole clip's group-norm statistics are used.
    """
    from transformers import HubertModel

    audio = speechlike(6.0)
    reference = HubertModel.from_pretrained(tiny[flavour]).eval()
    with torch.inference_mode():
        expected = reference(F.pad(audio, (40, 40))[None], output_hidden_states=True)
    last = features(audio, weights=str(tiny[flavour]), normalize=False)
    assert last.shape == (300, 32)
    assert torch.allclose(last, expected.last_hidden_state[0], atol=1e-4)
    for layer in (0, 1):
        hidden = features(audio, weights=str(tiny[flavour]), normalize=False, layer=layer)
        assert torch.allclose(hidden, expected.hidden_states[layer][0], atol=1e-4)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_chunk_seams_do_not_change_features_with_a_bounded_context(tiny, flavour):
    """30 s in 4 s passes equals one 30 s pass once attention reaches 0.5 s per layer."""
    audio = speechlike(30.0)
    common = dict(weights=str(tiny[flavour]), context_seconds=0.5, overlap_seconds=0)  # overlap is raised to the reach
    whole = features(audio, chunk_seconds=60, **common)
    chunked = features(audio, chunk_seconds=4, **common)
    assert whole.shape == chunked.shape == (1500, 32)
    assert (whole - chunked).abs().max() < 1e-4
    # Without the overlap the seams would show: the check above is not vacuous.
    module = encoder(chunk_seconds=4, **common).build().eval()
    module.overlap = 0
    with torch.inference_mode():
        seamed = module({"audio": audio}, Timeline(audio.shape[0], 16000))["features"]
    assert (whole - seamed).abs().max() > 1e-2


def test_rows_are_exact_for_awkward_lengths(tiny):
    module = encoder(weights=str(tiny["large-like"]), chunk_seconds=0.5, overlap_seconds=0.2).build().eval()
    for n_samples in (0, 319, 320, 16001, 23999):
        with torch.inference_mode():
            out = module({"audio": speechlike(n_samples / 16000)}, Timeline(n_samples, 16000))["features"]
        assert out.shape == (n_samples // 320, 32)


def test_normalisation_follows_the_checkpoint_and_makes_features_gain_invariant(tmp_path):
    audio = speechlike(1.0)
    normalising = str(save_tiny(tmp_path / "norm", do_normalize=True, **FLAVOURS["large-like"]))
    raw = str(save_tiny(tmp_path / "raw", do_normalize=False, **FLAVOURS["large-like"]))
    shifted = 4 * audio + 0.05  # louder, with a DC offset
    assert torch.allclose(features(audio, weights=normalising), features(shifted, weights=normalising), atol=1e-4)
    assert not torch.allclose(features(audio, weights=raw), features(shifted, weights=raw), atol=1e-2)
    assert torch.allclose(features(shifted, weights=raw, normalize=True), features(audio, weights=normalising), atol=1e-4)


def test_weighted_layers_learn_while_the_frozen_backbone_does_not(tiny):
    module = encoder(weights=str(tiny["base-like"]), layer="weighted").build()
    module.train()
    assert not module.backbone.training  # frozen: no dropout even in training mode
    out = module({"audio": speechlike(1.0)}, Timeline(16000, 16000))["features"]
    out.square().mean().backward()
    assert module.layer_logits.grad is not None and module.layer_logits.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in module.backbone.parameters())
    # Equal logits: the mean of the three hidden states.
    states = [features(speechlike(1.0), weights=str(tiny["base-like"]), layer=k) for k in (0, 1, 2)]
    with torch.no_grad():
        assert torch.allclose(out, torch.stack(states).mean(0), atol=1e-4)


def test_trainable_backbone_gets_gradients(tiny):
    module = encoder(weights=str(tiny["base-like"]), trainable=True).build().train()
    module({"audio": speechlike(0.5)}, Timeline(8000, 16000))["features"].sum().backward()
    grads = [p.grad for p in module.backbone.encoder.layers[-1].parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_a_trainable_group_norm_front_end_gets_the_models_gradient(tiny):
    """The whole-clip statistics are functions of the first convolution's weights, as in nn.GroupNorm."""
    from transformers import HubertModel

    audio = speechlike(2.0)
    reference = HubertModel.from_pretrained(tiny["base-like"]).eval()
    reference(F.pad(audio, (40, 40))[None], output_hidden_states=True).hidden_states[0][0].square().sum().backward()
    module = encoder(weights=str(tiny["base-like"]), trainable=True, normalize=False, layer=0).build().eval()
    module({"audio": audio}, Timeline(audio.shape[0], 16000))["features"].square().sum().backward()
    ours = module.backbone.feature_extractor.conv_layers[0].conv.weight.grad
    theirs = reference.feature_extractor.conv_layers[0].conv.weight.grad
    assert (ours - theirs).norm() / theirs.norm() < 1e-3


def test_bfloat16_is_close_to_float32(tiny):
    audio = speechlike(3.0)
    exact = features(audio, weights=str(tiny["base-like"]), chunk_seconds=1)
    fast = features(audio, weights=str(tiny["base-like"]), chunk_seconds=1, precision="bfloat16")
    assert fast.dtype == torch.float32
    assert (fast - exact).norm() / exact.norm() < 0.05
    with pytest.raises(PortMismatch, match="precision: bfloat16 is for inference"):
        encoder(weights=str(tiny["base-like"]), precision="bfloat16", trainable=True).outputs()


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bfloat16_for_a_frozen_backbone_where_the_cpu_has_it(tiny, monkeypatch, native):
    from thkit.plugins.encoders import _hubert_module

    monkeypatch.setattr(_hubert_module, "native_bfloat16", lambda: native)
    frozen = encoder(weights=str(tiny["base-like"]), precision="auto").build()
    trainable = encoder(weights=str(tiny["base-like"]), precision="auto", trainable=True).build()
    assert frozen.backbone.dtype == (torch.bfloat16 if native else torch.float32)
    assert trainable.backbone.dtype == torch.float32
    assert HubertParams().precision == "auto"
    with torch.inference_mode():
        out = frozen({"audio": speechlike(1.0)}, Timeline(16000, 16000))["features"]
    assert out.dtype == torch.float32 and out.shape == (50, 32)


def test_wav2vec2_family(tmp_path):
    from transformers import Wav2Vec2Model

    folder = save_tiny(tmp_path / "w2v", family="wav2vec2", **FLAVOURS["large-like"])
    audio = speechlike(1.0)
    out = features(audio, family="wav2vec2", weights=str(folder), normalize=False)
    with torch.inference_mode():
        expected = Wav2Vec2Model.from_pretrained(folder).eval()(F.pad(audio, (40, 40))[None]).last_hidden_state[0]
    assert torch.allclose(out, expected, atol=1e-4)
    with pytest.raises(PortMismatch, match="family: hubert, but .* holds a wav2vec2 model"):
        encoder(weights=str(folder)).outputs()


def test_width_without_loading(tiny, tmp_path):
    assert encoder().outputs()["features"].dim == 1024  # facebook/hubert-large-ls960-ft, by its size word
    assert encoder(weights="facebook/hubert-base-ls960").outputs()["features"].dim == 768
    assert encoder(weights="someone/my-speech-model", hidden=512).outputs()["features"].dim == 512
    port = encoder(weights=str(tiny["base-like"])).outputs()["features"]
    assert (port.dim, port.fps) == (32, 50)
    with pytest.raises(PortMismatch, match="set `hidden:`"):
        encoder(weights="someone/my-speech-model").outputs()
    with pytest.raises(PortMismatch, match="hidden_size 32"):
        encoder(weights=str(tiny["base-like"]), hidden=768).outputs()
    with pytest.raises(PortMismatch, match="layer: 3 is out of range"):
        encoder(weights=str(tiny["base-like"]), layer=3).outputs()


def test_missing_weights_say_where_to_put_them(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once, not after retries
    with pytest.raises(ThkitError) as error:
        encoder(weights="facebook/hubert-large-ls960-ft").build()
    text = error.value.format()
    assert "facebook/hubert-large-ls960-ft" in text
    assert "hf download facebook/hubert-large-ls960-ft --local-dir weights/hubert-large-ls960-ft" in text
    assert "weights: weights/hubert-large-ls960-ft" in text
    with pytest.raises(ThkitError, match="weights folder '.*nowhere' does not exist"):
        encoder(weights=str(tmp_path / "nowhere"), hidden=768).build()



def test_cache_identity_hashes_the_frozen_backbone_once(tiny, monkeypatch):
    import thkit.audio.cache as cache
    from thkit.plugins.encoders import _hubert_module

    module = encoder(weights=str(tiny["base-like"])).build()
    calls = []
    real = cache.state_digest
    monkeypatch.setattr(_hubert_module, "state_digest", lambda state: calls.append(len(state)) or real(state))
    first = cache.module_digest(module)
    second = cache.module_digest(module)
    assert first == second
    backbone_tensors = sum(1 for key in module.state_dict() if key.startswith("backbone."))
    assert calls.count(backbone_tensors) == 1  # the backbone was hashed on the first lookup only
    assert module.cache_identity() != encoder(weights=str(tiny["large-like"])).build().cache_identity()


def test_a_run_checkpoint_leaves_a_frozen_backbone_out_and_checks_it_on_load(tiny, tmp_path):
    """The run file holds the learned layer weights, not the backbone; loading puts them back over
    a backbone built from `weights`, after checking it is the one the run was trained with."""
    from safetensors import safe_open

    from thkit.train.run import WEIGHTS, Checkpoint, RunFolder

    params = dict(weights=str(tiny["base-like"]), layer="weighted", precision="bfloat16")  # the digest ignores precision
    trained = encoder(**params).build()
    with torch.no_grad():
        trained.layer_logits.copy_(torch.arange(3.0))
    folder = RunFolder(tmp_path / "run").open()
    folder.save({"spec": "toy"}, {"content": trained}, Checkpoint({}, {}), [])
    with safe_open(folder.path(WEIGHTS), "pt") as file:
        assert list(file.keys()) == ["content.layer_logits"]

    fresh = encoder(**{**params, "precision": "float32"}).build()
    folder.load_weights({"content": fresh})
    assert torch.equal(fresh.layer_logits, torch.arange(3.0))

    other = save_tiny(tmp_path / "other", **FLAVOURS["base-like"], initializer_range=0.05)  # different weights
    stranger = encoder(**{**params, "weights": str(other)}).build()
    with pytest.raises(ThkitError, match="node 'content'.*not those the run was trained with"):
        folder.load_weights({"content": stranger})


def test_a_trainable_backbone_is_saved_whole(tiny, tmp_path):
    from safetensors import safe_open

    from thkit.train.run import WEIGHTS, Checkpoint, RunFolder

    module = encoder(weights=str(tiny["large-like"]), trainable=True).build()
    folder = RunFolder(tmp_path / "run").open()
    folder.save({"spec": "toy"}, {"content": module}, Checkpoint({}, {}), [])
    with safe_open(folder.path(WEIGHTS), "pt") as file:
        assert {f"content.{key}" for key in module.state_dict()} == set(file.keys())
    folder.load_weights({"content": encoder(weights=str(tiny["large-like"]), trainable=True).build()})
