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

from pydantic import Field, field_validator

from thkit.core import Accepts, Component, Frames, Params, Pose, Seq

if TYPE_CHECKING:
    from torch import nn


class TriplaneNerfParams(Params):
    resolutions: tuple[int, ...] = Field(
        (64, 256), min_length=1, description="tri-plane resolutions across the box, concatenated (coarse ones learn fast, fine ones hold texture)"
    )
    channels: int = Field(8, ge=1, description="feature channels per plane and resolution")
    hidden: int = Field(64, ge=1, description="width of the density and colour MLPs (ER-NeRF: 64)")
    layers: int = Field(3, ge=1, description="layers of the density MLP (ER-NeRF: 3); the colour MLP has 2")
    gate_hidden: int = Field(32, ge=1, description="width of the region-attention MLP that gates the audio code per point")
    geo_features: int = Field(15, ge=1, description="geometry features passed from the density MLP to the colour MLP")
    audio_dim: int = Field(32, ge=1, description="width of the audio code after projection (ER-NeRF: 64)")
    latent_dim: int = Field(4, ge=0, description="per-frame latent appearance code (ER-NeRF: 4); 0 = none")
    bound: float = Field(1.4, gt=0, description="half-size of the head's box [-bound, bound]^3 in head-space units (dm)")
    near: float = Field(0.05, ge=0, description="closest sampling distance from the camera, used when the camera is inside the box (dm)")
    far: float = Field(1000.0, gt=0, description="farthest sampling distance from the camera (dm)")
    coarse_samples: int = Field(32, ge=2, description="uniform samples per ray whose densities place the fine samples (no gradient)")
    fine_samples: int = Field(16, ge=1, description="samples per ray that are rendered, drawn from the coarse weights")
    occupancy: int = Field(48, ge=0, description="occupancy grid resolution for skipping empty space when rendering; 0 = off")
    density_cache: int = Field(
        128,
        ge=0,
        description="resolution of the density grid, sampled once from the trained field, that places the samples of renders "
        "without gradient instead of the coarse pass's field evaluations (needs the occupancy grid); 0 = always the coarse pass",
    )
    chunk: int = Field(4096, ge=1, description="rays rendered at once: bounds memory for whole frames (4096 is fastest on a CPU; raise it on a GPU)")
    inference_precision: Literal["float32", "bfloat16"] = Field(
        "bfloat16",
        description="arithmetic of the network where no gradient flows (the coarse pass, rendering): bfloat16 runs on CPUs "
        "with AVX512-BF16/AMX and on GPUs with bfloat16 (float32 elsewhere); frames differ from float32 by about 1e-4 RMS",
    )

    @field_validator("resolutions")
    @classmethod
    def _at_least_two(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(r < 2 for r in value):
            raise ValueError(f"every plane resolution must be >= 2, got {list(value)}")
        return value


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
