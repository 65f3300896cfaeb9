"""`landmark-nerf`: a head NeRF conditioned on facial landmarks by Gaussian relative position coding.

The decoupled Gaussian-landmark paper's second stage (Ma, Cao, Zhang, CVM 2025): the head is a
NeRF in the dataset's canonical head space, and what moves it is the frame's 3D landmarks (tracked
ones while training, predicted ones from an audio-to-landmark model when rendering). Each landmark
carries a learned anisotropic 3D Gaussian centred on it; every ray sample is coded by its offset
from the nearby landmarks, in each Gaussian's own frame, weighted by the Gaussian, so a landmark
changes the field only around itself. The code enters the density and colour heads next to the
sample's tri-plane features. An audio code (through a region-attention gate), a blink value
(through an eye gate) and a per-frame latent code are optional extras, as in `triplane-nerf`.

Sampling, compositing and outputs match `triplane-nerf`: premultiplied `rgba`, `depth`,
`reg_ambient` (how much of the landmark coding, and of the audio gate when audio is connected, each
ray sees, for the ambient loss), `reg_eye` (blink connected) and `reg_entropy`. The design and its
reasons are written down in `thkit.plugins.renderers._landmark_nerf_module`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from thkit.core import Accepts, Component, Frames, Landmarks, Pose, Seq
from thkit.plugins.renderers.head_nerf_params import HeadNerfParams

if TYPE_CHECKING:
    from torch import nn


class LandmarkNerfParams(HeadNerfParams):
    landmark_dim: int = Field(32, ge=1, description="width of the landmark code each sample gets from the Gaussians around it")
    landmark_frequencies: int = Field(2, ge=0, description="sinusoid frequencies encoding a sample's offset in a landmark's Gaussian frame (the paper: 2)")
    gaussian_scale: float = Field(
        0.1, gt=0, description="initial standard deviation of every landmark's Gaussian along each axis (dm); learned per landmark and axis"
    )
    cutoff: float = Field(
        3.0, ge=0, description="Mahalanobis distance (sigmas) beyond which a landmark does not code a sample; 0 = every landmark codes every sample"
    )
    density_cache: int = Field(
        0,
        ge=0,
        description="resolution of a density grid sampled under the mean landmarks of training that places the samples of renders "
        "without gradient instead of the coarse pass (needs the occupancy grid); 0 = always the coarse pass. Off by default: "
        "about 1.8x faster rendering at the same PSNR, but the mouth's samples are placed for the mean mouth (see the module docstring)",
    )


class LandmarkNerf(Component):
    """Landmark-conditioned head NeRF: Gaussian relative position coding + tri-planes -> rgba."""

    kind = "renderer"
    Params = LandmarkNerfParams
    inputs = {
        "landmarks": Accepts(Landmarks, dims=3, fps="video", doc="3D landmarks per frame in canonical head space (iBUG 68: tracked or predicted)"),
        "pose": Accepts(Pose, doc="camera-to-world per frame in head space; rays come from the batch's cameras, built from it"),
        "audio": Accepts(Seq, fps="video", required=False, doc="an audio code per video frame, any width, gated per point"),
        "blink": Accepts(Seq, dim=1, fps="video", required=False, doc="eye closure per frame, 0 open .. 1 closed"),
    }

    def outputs(self) -> dict[str, Frames]:
        size = self.context.image_size
        return {"rgba": Frames(size, size, self.context.video_fps)}

    def build(self) -> nn.Module:
        from thkit.plugins.renderers._landmark_nerf_module import LandmarkNerfModule

        p = self.params
        audio = self.input_ports.get("audio")
        return LandmarkNerfModule(
            n_landmarks=self.input_ports["landmarks"].n,
            audio_in=audio.dim if audio is not None else 0,
            use_blink="blink" in self.input_ports,
            n_frames=self.context.n_frames,
            resolutions=p.resolutions,
            channels=p.channels,
            hidden=p.hidden,
            layers=p.layers,
            geo_features=p.geo_features,
            landmark_dim=p.landmark_dim,
            landmark_frequencies=p.landmark_frequencies,
            gaussian_scale=p.gaussian_scale,
            cutoff=p.cutoff,
            audio_dim=p.audio_dim,
            gate_hidden=p.gate_hidden,
            latent_dim=p.latent_dim,
            bound=p.bound,
            near=p.near,
            far=p.far,
            coarse_samples=p.coarse_samples,
            fine_samples=p.fine_samples,
            occupancy=p.occupancy,
            density_cache=p.density_cache,
            chunk=p.chunk,
        )
