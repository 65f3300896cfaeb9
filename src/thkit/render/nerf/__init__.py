"""Building blocks shared by the NeRF renderers (imports torch and nerfstudio's pure-torch components).

- `bounds`: rays against the head's axis-aligned box, and the rays of a `PixelBatch` that enter it;
- `sampling`: nerfstudio `RayBundle`s from those rays, and coarse-to-fine sampling (uniform samples
  evaluated front to back without gradient, then PDF samples, the ones rendered);
- `occupancy`: a density grid kept up to date while training; rendering drops the rays that cross
  no occupied cell and shortens the others to their occupied stretch;
- `density_cache`: a density grid sampled once from a trained field, which places the samples of
  whole-frame renders instead of the field's own coarse pass;
- `encodings`: multi-resolution tri-planes (nerfstudio `KPlanesEncoding`) and 2D image-space grids;
- `codes`: per-frame latent codes with a shared code for unseen frames;
- `volume`: volume rendering of densities and colours into premultiplied rgba, depth and per-ray terms;
- `compose`: premultiplied "over", and the alpha entropy regulariser.
"""
