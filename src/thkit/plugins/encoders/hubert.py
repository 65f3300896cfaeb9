"""`hubert`: hidden states of a transformers HuBERT or wav2vec2 model, at 50 frames per second.

The semantic content encoder of DAMC, ER-NeRF, GeneFace and SyncTalk. The peers feed
`facebook/hubert-large-ls960-ft`'s last hidden state (1024-d); that is the default here.

Weights. `weights` is a local folder holding a transformers checkpoint (config.json plus
model.safetensors) or a hub id; it is loaded with `from_pretrained(weights)` at build time (from
the hub cache when the id was downloaded before). No PyPI package ships these weights, so an
offline machine needs the folder: `hf download <id> --local-dir <folder>` elsewhere, copy it over,
and set `weights: <folder>`. A spec is validated without loading anything.

Width. The output width is the model's hidden size, which `outputs()` must know without loading
the model. It is read from `<weights>/config.json` when `weights` is a local folder; otherwise it
is `hidden` when set, else taken from the size word in the id ("base" 768, "large" 1024,
"xlarge" 1280), else validation asks for `hidden`. Build checks the loaded model agrees.

Timing. Frame i is centred on the middle of row i (the audio is padded by (400 - 320) / 2 samples
on the left, so the 400-sample receptive field of the convolutional front end is centred on each
20 ms row), and the output has exactly `timeline.frames(50)` rows.

Long audio runs in passes of `chunk_seconds` of new frames, each with `overlap_seconds` of context
on either side; every output frame comes from the pass in which it is central. Two things could
make the seams show, and both are dealt with:

- The group-norm front end of base-size models normalises each channel over the whole input. Its
  statistics follow exactly from the clip's sums over the first convolution's windows (a few
  float64 sums, no convolution), so every pass normalises exactly as one pass over the whole clip
  would.
- Attention is global, so a frame's features depend on all the audio a pass sees. With
  `context_seconds: null` (the default, the model as trained) a clip no longer than
  `chunk_seconds` is exactly the model's output, and longer clips differ from one whole pass only
  by what attention gathers from beyond `overlap_seconds` (small for pretrained models, not zero).
  With `context_seconds: c` each layer attends only to frames within c seconds, so a frame sees
  at most (positional-convolution half-width + layers x c) frames either way; the overlap is
  raised to that, and chunking then leaves the features unchanged (up to float rounding).

Memory grows with one pass (`chunk_seconds + 2 * overlap`; its convolutions run in 5 s blocks),
not with the clip. The convolutions see each frame once: the frames two passes share are carried
over, not recomputed. Pass length trades context for speed, as attention's cost grows with the
square of a pass's length: on this project's 2-core CPU (bfloat16, base size, 3 min of speech,
2 threads) 30 s chunks with 3 s of overlap ran at 10.2x real time, the default 20 s with 2 s at
12.7-13.2x, 15 s with 1.5 s at 12.4x and 10 s with 1 s at 13.4x. The default gives every frame
at least 2 s of context on either side; the peers' HuBERT scripts (ER-NeRF's and GeneFace's
data_utils/hubert.py) cut long audio into 1000-frame (20 s) pieces with none.

Precision. A frozen backbone runs in bfloat16 where the CPU has bfloat16 instructions
(`precision: auto`, decided when the model is built): about 1.7x faster than float32 on an
AVX512-BF16 CPU, at 1.6% relative error in the features of a base-size model (measured on random
weights; features are returned in float32 either way). A trainable backbone, or `precision:
float32`, computes in float32. Dynamic int8 quantisation of the transformer's Linear layers was
measured and left out: on top of bfloat16 it was only about 8% faster end to end, at 4.5% relative
error, through an API (torch.ao.quantization) that PyTorch deprecates.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from thkit.core import Accepts, Audio, Component, Params, PortMismatch, Seq

if TYPE_CHECKING:
    from torch import nn

SAMPLE_RATE = 16000  # every HuBERT and wav2vec2 checkpoint is trained on 16 kHz audio
FPS = Fraction(50)  # their convolutional front ends step 320 samples
SIZE_WORDS = {"xlarge": 1280, "large": 1024, "base": 768}  # hidden size by the size word in a hub id


class HubertParams(Params):
    family: Literal["hubert", "wav2vec2"] = Field("hubert", description="model class: HubertModel or Wav2Vec2Model")
    weights: str = Field(
        "facebook/hubert-large-ls960-ft",
        description="local checkpoint folder (config.json + model.safetensors) or hub id, loaded at build time",
    )
    hidden: int | None = Field(
        None, ge=1, description="hidden size, when `weights` is not a local folder and its id names no size"
    )
    layer: int | Literal["weighted"] = Field(
        -1,
        description="hidden state to output: 0 is the transformer's input, k the output of layer k, -1 the last "
        "(after the final layer norm); 'weighted' learns a softmax-weighted sum of all of them",
    )
    trainable: bool = Field(False, description="fine-tune the backbone (else it is frozen and kept in eval mode)")
    normalize: bool | None = Field(
        None,
        description="zero-mean unit-variance input per clip; default: as the checkpoint's preprocessor_config.json "
        "says (Wav2Vec2FeatureExtractor's do_normalize, true when absent)",
    )
    chunk_seconds: float = Field(20.0, ge=0.1, description="new audio per pass (bounds memory)")
    overlap_seconds: float = Field(2.0, ge=0, description="context each pass carries on either side of its frames")
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="backbone arithmetic: bfloat16 about halves the time on CPUs with AVX512-BF16/AMX and on GPUs, "
        "at about 2% relative error in the features (frozen backbones only); auto: bfloat16 for a frozen backbone "
        "when this machine's CPU has those instructions, else float32",
    )
    context_seconds: float | None = Field(
        None,
        gt=0,
        description="limit each layer's attention to frames within this many seconds, which makes chunking exact "
        "(null: global attention, as the model was trained)",
    )


class HubertEncoder(Component):
    """HuBERT / wav2vec2 hidden states: 16 kHz audio -> Seq(hidden, 50)."""

    kind = "encoder"
    Params = HubertParams
    version = "2"
    inputs = {"audio": Accepts(Audio, sample_rate=SAMPLE_RATE, doc="mono speech at 16 kHz")}

    def outputs(self) -> dict[str, Seq]:
        if self.params.precision == "bfloat16" and self.params.trainable:
            raise PortMismatch(None, f"precision: {self.params.precision} is for inference: use float32 with trainable: true")
        return {"features": Seq(self.hidden_size(), FPS)}

    def hidden_size(self) -> int:
        """The feature width, known without loading the model (see the module docstring)."""
        params = self.params
        config = local_config(params.weights)
        if config is not None:
            return self._check_local_config(config)
        if params.hidden is not None:
            return params.hidden
        words = re.split(r"[-_/.]", params.weights.lower())
        for word, size in SIZE_WORDS.items():
            if word in words:
                return size
        raise PortMismatch(
            None,
            f"cannot tell the width of '{params.weights}' without loading it: set `hidden:` "
            "(768 for base, 1024 for large models) or point `weights:` at a local folder holding config.json",
        )

    def _check_local_config(self, config: dict[str, Any]) -> int:
        params = self.params
        hidden = int(config["hidden_size"])
        if params.hidden is not None and params.hidden != hidden:
            raise PortMismatch(None, f"hidden: {params.hidden}, but {params.weights}/config.json has hidden_size {hidden}")
        model_type = config.get("model_type")
        if model_type is not None and model_type != params.family:
            raise PortMismatch(None, f"family: {params.family}, but {params.weights} holds a {model_type} model (set family: {model_type})")
        layers = int(config.get("num_hidden_layers", 0))
        if isinstance(params.layer, int) and layers and not -(layers + 1) <= params.layer <= layers:
            raise PortMismatch(None, f"layer: {params.layer} is out of range: {params.weights} has hidden states 0..{layers}")
        return hidden

    def build(self) -> nn.Module:
        from thkit.plugins.encoders._hubert_module import HubertModule

        return HubertModule(self)


def local_config(weights: str) -> dict[str, Any] | None:
    """The parsed config.json of a local checkpoint folder, or None when `weights` is not one."""
    path = Path(weights).expanduser() / "config.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())
