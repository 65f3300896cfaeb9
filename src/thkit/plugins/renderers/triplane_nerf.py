"""`triplane-nerf`: an ER-NeRF-style dynamic head NeRF in the dataset's canonical head space.

Multi-resolution tri-planes encode each point; the audio code enters through region attention (a
per-point sigmoid gate on the projected code, so audio moves only the parts of the head it should),
an optional blink value through its own gate, and a per-frame latent code absorbs appearance
changes. Rays are sampled only inside the head's box, coarse-to-fine with nerfstudio samplers, and
rendered with nerfstudio renderers. Output: premultiplied `rgba` at the requested pixels, `depth`,
and the regularisers `reg_ambient` (audio gate seen by each ray), `reg_eye` (blink gate, when
blink is connected) and `reg_entropy` (alpha entropy). The design and its reasons are written down
in `thkit.plugins.renderers._triplane_nerf_module`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from thkit.core import Accepts, Component, Frames, Pose, Seq
from thkit.plugins.renderers.head_nerf_params import HeadNerfParams

if TYPE_CHECKING:
    from torch import nn


class TriplaneNerfParams(HeadNerfParams):
    inference_precision: Literal["float32", "bfloat16"] = Field(
        "bfloat16",
        description="arithmetic of the network where no gradient flows (the coarse pass, rendering): bfloat16 runs on CPUs "
        "with AVX512-BF16/AMX and on GPUs with bfloat16 (float32 elsewhere); frames differ from float32 by about 1e-4 RMS",
    )


class TriplaneNerf(Component):
    """ER-NeRF-style head NeRF: tri-planes, region attention on the audio code, blink gate -> rgba."""

    kind = "renderer"
    Params = TriplaneNerfParams
    inputs = {
        "audio": Accepts(Seq, fps="video", doc="the audio code per video frame (e.g. a fusion's code), any width"),
        "pose": Accepts(Pose, doc="camera-to-world per frame in head space; rays come from the batch's cameras, built from it"),
        "blink": Accepts(Seq, dim=1, fps="video", required=False, doc="eye closure per frame, 0 open .. 1 closed"),
    }

    def outputs(self) -> dict[str, Frames]:
        size = self.context.image_size
        return {"rgba": Frames(size, size, self.context.video_fps)}

    def build(self) -> nn.Module:
        from thkit.plugins.renderers._triplane_nerf_module import TriplaneNerfModule

        p = self.params
        return TriplaneNerfModule(
            audio_in=self.input_ports["audio"].dim,
            use_blink="blink" in self.input_ports,
            n_frames=self.context.n_frames,
            resolutions=p.resolutions,
            channels=p.channels,
            hidden=p.hidden,
            layers=p.layers,
            gate_hidden=p.gate_hidden,
            geo_features=p.geo_features,
            audio_dim=p.audio_dim,
            latent_dim=p.latent_dim,
            bound=p.bound,
            near=p.near,
            far=p.far,
            coarse_samples=p.coarse_samples,
            fine_samples=p.fine_samples,
            occupancy=p.occupancy,
            chunk=p.chunk,
            bfloat16_inference=p.inference_precision == "bfloat16",
            density_cache=p.density_cache,
        )
