"""The torch side of `torso-2d`, and the reasons behind each part (ER-NeRF's torso, arXiv 2307.09323).

1. **Image space, not 3D.** The torso is mostly a flat, slowly moving layer behind the head and
   partly outside any head box; modelling it in 3D would waste samples on the one thing a 2D layer
   does as well. Pixel coordinates are normalised to [-1, 1] (x right, y down) and encoded with
   `pixel_frequencies` sinusoids (nerfstudio `NeRFEncoding`).
2. **Pose through projected anchors.** `anchors` learned points in head space (initialised below
   the chin, where the neck joins) are projected into the frame by its camera-to-world pose and the
   batch's intrinsics; their normalised image positions, frequency-encoded, tell the network where
   the head, and so the neck, is in this frame. Projected points are in the same units as the
   pixel coordinates, so "the collar is 0.2 below the anchors" is an easy function to learn.
3. **Deformation MLP** (pixel encoding, anchor encoding, per-frame code) -> an offset added to the
   pixel's coordinates: the torso moves and bends with the head by moving where it is looked up.
   Its last layer starts at 1/100 scale, so training begins from the undeformed layer.
   `reg_deform` (squared offset) lets the trainer keep offsets small.
4. **Multi-resolution 2D grids** (`thkit.render.nerf.encodings.MultiResPlanes2d`) at the deformed
   coordinates, then a colour MLP (grid features, per-frame code) -> sigmoid rgb and alpha. ER-NeRF
   uses a 2D hash grid with 16 levels; dense grids at 4 resolutions up to 256 are pure torch and
   small (4 x 256^2 values at the finest).
5. **Compositing**: torso colour premultiplied by its alpha; the output is the head's rgba over it
   (`thkit.render.nerf.compose.over`), so the graph's last renderer returns the whole subject.
   `reg_entropy` is the torso alpha's binary entropy, pushing it to a clean 0 or 1.
6. **Rendering skips the empty background.** A trained torso covers a quarter of a frame; the rest
   is alpha 0. Without gradient, each frame's torso is first evaluated on a grid `COARSE` times
   coarser (1/16 of the pixels); only pixels whose coarse cell or one of its 8 neighbours has alpha
   above `VISIBLE_ALPHA` are evaluated, the rest are left transparent. The dilation covers what lies
   between coarse samples (the torso's edge moves by less than a cell between neighbours: its
   grids and deformation are smooth at that scale), and `VISIBLE_ALPHA` is below what can change an
   8-bit colour. Training and any batch with gradient evaluate every pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from nerfstudio.field_components.encodings import NeRFEncoding
from nerfstudio.field_components.mlp import MLP
from torch import Tensor, nn

from thkit.core.pixels import PixelBatch
from thkit.render.nerf.codes import FrameCodes
from thkit.render.nerf.compose import alpha_entropy, over
from thkit.render.nerf.encodings import MultiResPlanes2d

# Initial anchors (dm, canonical head space): the chin's underside and either side of the neck's base.
ANCHOR_INIT = ((0.0, -1.1, 0.4), (-0.7, -1.6, 0.0), (0.7, -1.6, 0.0))
DEFORM_INIT_SCALE = 0.01
CHUNK = 65536
COARSE = 4  # render-time visibility grid: one torso evaluation per COARSE x COARSE pixels
VISIBLE_ALPHA = 1 / 1024  # below half an 8-bit step even over white


class Torso2dModule(nn.Module):
    def __init__(
        self,
        *,
        n_frames: int,
        resolutions: Sequence[int],
        channels: int,
        hidden: int,
        layers: int,
        pixel_frequencies: int,
        pose_frequencies: int,
        anchors: int,
        latent_dim: int,
    ) -> None:
        super().__init__()
        init = torch.tensor([ANCHOR_INIT[i % len(ANCHOR_INIT)] for i in range(anchors)])
        init = init + 0.1 * (torch.arange(anchors)[:, None] // len(ANCHOR_INIT))  # distinct points past the third
        self.anchors = nn.Parameter(init)
        self.pixel_encoding = NeRFEncoding(2, pixel_frequencies, 0.0, pixel_frequencies - 1.0, include_input=True)
        self.pose_encoding = NeRFEncoding(2 * anchors, pose_frequencies, 0.0, pose_frequencies - 1.0, include_input=True)
        self.codes = FrameCodes(n_frames, latent_dim) if latent_dim else None
        deform_in = self.pixel_encoding.get_out_dim() + self.pose_encoding.get_out_dim() + latent_dim
        self.deform = MLP(deform_in, layers, hidden, 2)
        with torch.no_grad():
            self.deform.layers[-1].weight.mul_(DEFORM_INIT_SCALE)
            self.deform.layers[-1].bias.zero_()
        self.grids = MultiResPlanes2d(resolutions, channels)
        self.colour = MLP(self.grids.out_dim + latent_dim, layers, hidden, 4, out_activation=nn.Sigmoid())

    def project_anchors(self, pose: Float[Tensor, "F 4 4"], batch: PixelBatch) -> Float[Tensor, "F anchors2"]:
        """Each frame's anchors in normalised image coordinates ([-1, 1], x right, y down), flattened."""
        focal, cx, cy = batch.intrinsics
        rotation, origin = pose[:, :3, :3], pose[:, :3, 3]
        camera = torch.einsum("fji,faj->fai", rotation, self.anchors[None] - origin[:, None, :])  # R^T (p - t)
        depth = (-camera[..., 2]).clamp(min=1e-3)  # OpenGL cameras look along -z
        x = (cx + focal * camera[..., 0] / depth) / batch.width * 2 - 1
        y = (cy - focal * camera[..., 1] / depth) / batch.height * 2 - 1
        return torch.stack([x, y], dim=-1).flatten(1)

    def forward(self, batch: PixelBatch, conditions: dict[str, Tensor]) -> dict[str, Tensor]:
        device = self.anchors.device
        batch = batch.to(device)
        head = conditions["head"].to(device, torch.float32)
        pose = conditions["pose"].to(device, torch.float32)
        anchors = self.pose_encoding(self.project_anchors(pose, batch))  # [F, enc]
        latent = self.codes(batch.frame_ids) if self.codes is not None else None
        size = torch.tensor([batch.width, batch.height], dtype=torch.float32, device=device)
        xy = batch.pixels / size * 2 - 1
        rows = batch.n_rays
        visible = None if torch.is_grad_enabled() else self.visible(batch, anchors, latent)
        if visible is not None:
            kept = visible.nonzero().squeeze(-1)
            xy, slot = xy[kept], batch.slot[kept]
        else:
            slot = batch.slot
        parts = [self.torso(xy[i : i + CHUNK], slot[i : i + CHUNK], anchors, latent) for i in range(0, len(xy), CHUNK)]
        torso = torch.cat([p[0] for p in parts]) if parts else head.new_zeros(0, 4)
        offset = torch.cat([p[1] for p in parts]) if parts else head.new_zeros(0)
        if visible is not None:
            torso = head.new_zeros(rows, 4).index_copy_(0, kept, torso)
            offset = head.new_zeros(rows).index_copy_(0, kept, offset)
        return {"rgba": over(head, torso), "reg_entropy": alpha_entropy(torso[:, 3]), "reg_deform": offset}

    def visible(self, batch: PixelBatch, anchors: Float[Tensor, "F enc"], latent: Float[Tensor, "F latent"] | None) -> Tensor | None:
        """Which pixels of `batch` may show torso (point 6 of the module docstring); None when a
        coarse pass would cost more than it saves (fewer pixels per frame than twice the coarse grid)."""
        frames = batch.frame_ids.shape[0]
        rows, cols = -(-batch.height // COARSE), -(-batch.width // COARSE)
        if frames == 0 or batch.n_rays < 2 * frames * rows * cols:
            return None
        device = batch.pixels.device
        centres_y = (torch.arange(rows, device=device) * COARSE + COARSE / 2).clamp(max=batch.height - 0.5)
        centres_x = (torch.arange(cols, device=device) * COARSE + COARSE / 2).clamp(max=batch.width - 0.5)
        grid_y, grid_x = torch.meshgrid(centres_y, centres_x, indexing="ij")
        size = torch.tensor([batch.width, batch.height], dtype=torch.float32, device=device)
        xy = (torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2) / size * 2 - 1).repeat(frames, 1)
        slot = torch.arange(frames, device=device).repeat_interleave(rows * cols)
        alpha = self.torso(xy, slot, anchors, latent)[0][:, 3].reshape(frames, 1, rows, cols)
        cells = F.max_pool2d((alpha > VISIBLE_ALPHA).float(), kernel_size=3, stride=1, padding=1)[:, 0] > 0  # [F, rows, cols]
        cell = (batch.pixels * (1 / COARSE)).long()  # [R, 2] (x, y): truncation is floor for pixels >= 0
        flat = (batch.slot * rows + cell[:, 1].clamp(0, rows - 1)) * cols + cell[:, 0].clamp(0, cols - 1)
        return cells.reshape(-1)[flat]

    def torso(
        self, xy: Float[Tensor, "R 2"], slot: Tensor, anchors: Float[Tensor, "F enc"], latent: Float[Tensor, "F latent"] | None
    ) -> tuple[Float[Tensor, "R 4"], Float[Tensor, "R"]]:
        """Premultiplied torso rgba and squared deformation at normalised pixel coordinates."""
        code = [latent[slot]] if latent is not None else []
        offset = self.deform(torch.cat([self.pixel_encoding(xy), anchors[slot], *code], dim=-1))
        out = self.colour(torch.cat([self.grids(xy + offset), *code], dim=-1))
        alpha = out[:, 3:4]
        return torch.cat([out[:, :3] * alpha, alpha], dim=-1), offset.square().sum(dim=-1)
