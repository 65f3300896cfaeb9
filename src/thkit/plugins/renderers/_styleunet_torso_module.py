"""The torch side of `styleunet-torso`, and the reasons behind each part.

The paper's torso network is StyleAvatar's StyleUNet: the head-only render goes through a
convolutional encoder, and a StyleGAN2 decoder with skip connections, modulated by a style vector
(there, from the 6-d pose), draws the full frame. What changes here, and why:

1. **A canvas made from the pose, not the head render.** thkit's renderers are called on pixel
   sets (`thkit.core.pixels`): a few thousand scattered rays or a lip patch while training, whole
   frames in chunks of rows while rendering. A convolution over the head render would need every
   pixel of it, and a canvas filled only at the pixels of the batch would make a pixel's torso
   depend on which other pixels were drawn with it (differently in training and rendering). So
   the UNet's input is made over the whole frame from what every call has: `anchors` learned
   points in head space (initialised on the chin, the neck's base and the ears), projected into
   the frame by its pose and drawn as Gaussian blobs (`anchor_width`), the pixel coordinates, and
   a learned constant image (StyleGAN2's constant input: the mean torso, which the blobs and the
   style then move). The canvas is `resolution` square over the whole frame.
2. **Encoder-decoder with skips** (`levels` halvings, `channels` doubled per level): the encoder
   sees the anchors at every scale (where the neck is relative to the chin, the shoulders'
   breadth), the decoder draws back up with the encoder's features at each scale, so the torso's
   outline can be as sharp as the canvas.
3. **Style modulation: StyleGAN2 modulated convolutions with weight demodulation**, in every
   decoder convolution. The style is an MLP of the frame's pose (its rotation as two columns, 6
   numbers, and the projected anchors) and a per-frame latent code. Modulation scales each input
   channel of a convolution's weights per frame; demodulation rescales each output channel's
   weights to unit norm, so activations keep their scale whatever the style. AdaIN (StyleGAN1's
   choice) instead normalises every feature map's mean and variance per frame, which throws
   away what a torso's features mostly carry: how much of each channel there is (a shirt's
   colour, how much of the frame the torso fills); StyleGAN2 replaced it for the droplet
   artefacts that normalisation causes. Modulated convolutions also cost one grouped convolution
   per layer, about the price of a plain one.
4. **Per pixel**: the UNet's `features` are sampled bilinearly at each requested pixel; an MLP of
   them and the head's rgba there gives the torso's sigmoid rgb and alpha, premultiplied. The head
   rgba is the one place the head render enters: where the head is partly transparent (the chin's
   edge, hair) the torso learns to be opaque beneath it, so no background shows through the seam.
5. **Compositing** as `torso-2d`: the output is the head over the torso
   (`thkit.render.nerf.compose.over`), so the graph's last renderer returns the whole subject, and
   `reg_entropy` is the torso alpha's binary entropy.

The UNet runs once per frame of a call, without caching: rendering through the pipeline calls
a renderer once per frame up to 256 x 256 (`thkit.render.pipeline.RAYS_PER_CALL`), and at the
default 128 x 128 canvas with 8 channels it costs about 0.4 GFLOP per frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from nerfstudio.field_components.mlp import MLP
from torch import Tensor, nn

from thkit.core.pixels import PixelBatch
from thkit.render.nerf.codes import FrameCodes
from thkit.render.nerf.compose import alpha_entropy, over

# Initial anchors (dm, canonical head space): the chin's underside, either side of the neck's base, the ears.
ANCHOR_INIT = ((0.0, -1.2, 0.4), (-0.6, -1.6, 0.0), (0.6, -1.6, 0.0), (-1.0, 0.0, 0.0), (1.0, 0.0, 0.0))
SLOPE = 0.2  # LeakyReLU slope, as StyleGAN2
DEMODULATION_EPS = 1e-8
CONSTANT_INIT_STD = 0.1


def project(points: Float[Tensor, "A 3"], pose: Float[Tensor, "F 4 4"], batch: PixelBatch) -> Float[Tensor, "F A 2"]:
    """Head-space points in each frame's normalised image coordinates ([-1, 1], x right, y down)."""
    focal, cx, cy = batch.intrinsics
    rotation, origin = pose[:, :3, :3], pose[:, :3, 3]
    camera = torch.einsum("fji,faj->fai", rotation, points[None] - origin[:, None, :])  # R^T (p - t)
    depth = (-camera[..., 2]).clamp(min=1e-3)  # OpenGL cameras look along -z
    x = (cx + focal * camera[..., 0] / depth) / batch.width * 2 - 1
    y = (cy - focal * camera[..., 1] / depth) / batch.height * 2 - 1
    return torch.stack([x, y], dim=-1)


class ModulatedConv(nn.Module):
    """StyleGAN2's 3x3 convolution: weights scaled per input channel by the style, then demodulated."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.affine = nn.Linear(style_dim, in_channels)
        nn.init.ones_(self.affine.bias)  # the style starts as "every channel at 1"
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Float[Tensor, "F I H W"], style: Float[Tensor, "F S"]) -> Float[Tensor, "F O H W"]:
        frames, channels, height, width = x.shape
        weight = self.weight[None] * self.affine(style)[:, None, :, None, None]  # [F, O, I, 3, 3]
        weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + DEMODULATION_EPS)
        out = F.conv2d(x.reshape(1, frames * channels, height, width), weight.flatten(0, 1), padding=1, groups=frames)
        return F.leaky_relu(out.reshape(frames, -1, height, width) + self.bias[None, :, None, None], SLOPE)


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.LeakyReLU(SLOPE), nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.LeakyReLU(SLOPE)
    )


class StyleUnet(nn.Module):
    """Canvas [F, C, R, R] + style [F, S] -> features [F, out, R, R]: plain encoder, modulated decoder, skips."""

    def __init__(self, in_channels: int, channels: int, levels: int, style_dim: int, out_channels: int) -> None:
        super().__init__()
        widths = [channels * 2**level for level in range(levels + 1)]
        self.down = nn.ModuleList(conv_block(a, b) for a, b in zip([in_channels, *widths[:-1]], widths, strict=True))
        self.middle = ModulatedConv(widths[-1], widths[-1], style_dim)
        self.up = nn.ModuleList(
            nn.ModuleList([ModulatedConv(widths[level + 1] + widths[level], widths[level], style_dim), ModulatedConv(widths[level], widths[level], style_dim)])
            for level in reversed(range(levels))
        )
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, canvas: Float[Tensor, "F C R R"], style: Float[Tensor, "F S"]) -> Float[Tensor, "F out R R"]:
        skips = []
        x = canvas
        for level, block in enumerate(self.down):
            x = block(F.avg_pool2d(x, 2) if level else x)
            skips.append(x)
        x = self.middle(x, style)
        for (merge, refine), skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = refine(merge(torch.cat([x, skip], dim=1), style), style)
        return self.out(x)


class StyleUnetTorsoModule(nn.Module):
    def __init__(
        self,
        *,
        n_frames: int,
        resolution: int,
        levels: int,
        channels: int,
        style_dim: int,
        anchors: int,
        anchor_width: float,
        constant_channels: int,
        features: int,
        hidden: int,
        latent_dim: int,
    ) -> None:
        super().__init__()
        init = torch.tensor([ANCHOR_INIT[i % len(ANCHOR_INIT)] for i in range(anchors)])
        init = init + 0.1 * (torch.arange(anchors)[:, None] // len(ANCHOR_INIT))  # distinct points past the fifth
        self.anchors = nn.Parameter(init)
        self.anchor_width = anchor_width
        self.resolution = resolution
        # "grid" in the name: the trainer gives it the encodings' learning rate (thkit.train.trainer.param_groups).
        self.constant_grid = nn.Parameter(CONSTANT_INIT_STD * torch.randn(1, constant_channels, resolution, resolution))
        self.codes = FrameCodes(n_frames, latent_dim) if latent_dim else None
        self.mapping = MLP(2 * anchors + 6 + latent_dim, 2, style_dim, style_dim, activation=nn.LeakyReLU(SLOPE), out_activation=nn.LeakyReLU(SLOPE))
        self.unet = StyleUnet(2 + anchors + constant_channels, channels, levels, style_dim, features)
        self.pixel_net = MLP(features + 4, 2, hidden, 4, out_activation=nn.Sigmoid())

    def forward(self, batch: PixelBatch, conditions: dict[str, Tensor]) -> dict[str, Tensor]:
        device = self.anchors.device
        batch = batch.to(device)
        head = conditions["head"].to(device, torch.float32)
        pose = conditions["pose"].to(device, torch.float32)
        features = self.frame_features(pose, batch)  # [F, features, R, R]
        size = torch.tensor([batch.width, batch.height], dtype=torch.float32, device=device)
        sampled = sample_at(features, batch.pixels / size * 2 - 1, batch.slot)
        out = self.pixel_net(torch.cat([sampled, head], dim=-1))
        alpha = out[:, 3:4]
        torso = torch.cat([out[:, :3] * alpha, alpha], dim=-1)
        return {"rgba": over(head, torso), "reg_entropy": alpha_entropy(alpha[:, 0])}

    def frame_features(self, pose: Float[Tensor, "F 4 4"], batch: PixelBatch) -> Float[Tensor, "F features R R"]:
        """The UNet's output over the whole of each frame of the batch."""
        frames = pose.shape[0]
        anchors = project(self.anchors, pose, batch)  # [F, A, 2]
        parts = [anchors.flatten(1), pose[:, :3, :2].flatten(1)]
        if self.codes is not None:
            parts.append(self.codes(batch.frame_ids))
        style = self.mapping(torch.cat(parts, dim=-1))
        axis = (torch.arange(self.resolution, device=pose.device, dtype=torch.float32) + 0.5) / self.resolution * 2 - 1
        y, x = torch.meshgrid(axis, axis, indexing="ij")
        xy = torch.stack([x, y])  # [2, R, R]
        blobs = torch.exp(-(xy[None, None] - anchors[..., None, None]).square().sum(dim=2) / (2 * self.anchor_width**2))  # [F, A, R, R]
        canvas = torch.cat([xy.expand(frames, -1, -1, -1), blobs, self.constant_grid.expand(frames, -1, -1, -1)], dim=1)
        return self.unet(canvas, style)


def sample_at(features: Float[Tensor, "F C R R"], xy: Float[Tensor, "P 2"], slot: Int[Tensor, "P"]) -> Float[Tensor, "P C"]:
    """Bilinear samples of each pixel's frame's features at normalised coordinates (pixel-centre aligned)."""
    out = features.new_zeros(xy.shape[0], features.shape[1])
    for frame in range(features.shape[0]):
        rows = (slot == frame).nonzero().squeeze(-1)
        if rows.numel() == 0:
            continue
        grid = xy[rows].reshape(1, 1, -1, 2)
        sampled = F.grid_sample(features[frame : frame + 1], grid, mode="bilinear", padding_mode="border", align_corners=False)
        out = out.index_put((rows,), sampled[0, :, 0].T)
    return out
