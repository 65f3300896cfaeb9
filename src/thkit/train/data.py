"""Where a spec's subject comes from: `data:` resolved to a dataset folder (torch-free).

- `{dataset: PATH}` is used as it is (relative to the working directory, as validation reads it);
- `{synthetic: {seconds, size, seed}}` is generated once into `<cache>/datasets/synthetic-<hash>`
  and reused by every later run with the same parameters;
- `{video: FILE}` is preprocessed once into `<cache>/datasets/video-<hash>`, the hash being of the
  file's bytes and the preprocessing parameters (fps, size), so a renamed copy is not processed twice.

The cache root is `$THKIT_CACHE`, else `~/.cache/thkit`. A generated dataset is made in a hidden
folder beside its final name and renamed into place when complete, so a killed run never leaves a
half-made dataset under the real name (an unfinished preprocess resumes in its hidden folder).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from thkit.audio.cache import CACHE_ENV, canonical_json
from thkit.core.errors import ThkitError
from thkit.core.spec import DataSpec
from thkit.core.timebase import format_rate
from thkit.data.layout import LAYOUT_VERSION, Dataset

HASH_CHARS = 16  # hex digits of a cached dataset's name


def cache_root() -> Path:
    """`$THKIT_CACHE`, else `~/.cache/thkit`."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "thkit"


def resolve_dataset(data: DataSpec, root: Path | None = None, *, progress: bool = True) -> Path:
    """The dataset folder for a spec's `data:` section, generating or preprocessing it on first use."""
    if data.dataset is not None:
        path = Path(data.dataset).expanduser()
        Dataset(path)  # a clear error now when it is not a dataset
        return path.resolve()
    datasets = (root or cache_root()) / "datasets"
    if data.synthetic is not None:
        from thkit.data.synth.subject import GENERATOR_VERSION

        params = {"seconds": data.synthetic.seconds, "size": data.image_size, "seed": data.synthetic.seed, "layout": LAYOUT_VERSION, "generator": GENERATOR_VERSION}
        final = datasets / f"synthetic-{_digest(canonical_json(params).encode())}"
        if not (final / "dataset.json").is_file():
            _generate_synthetic(final, data, progress)
        return final
    assert data.video is not None
    return _preprocess_video(Path(data.video).expanduser(), datasets, data, progress)


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:HASH_CHARS]


def _generate_synthetic(final: Path, data: DataSpec, progress: bool) -> None:
    from thkit.data.synth import generate

    assert data.synthetic is not None
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        generate(partial, seconds=data.synthetic.seconds, size=data.image_size, seed=data.synthetic.seed, progress=progress)
        _move_into_place(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _preprocess_video(video: Path, datasets: Path, data: DataSpec, progress: bool) -> Path:
    if not video.is_file():
        raise ThkitError(f"data.video: {video}: no such file", hint="give the path of a video file, relative to the working directory")
    settings = canonical_json({"fps": format_rate(data.fps), "size": data.image_size, "layout": LAYOUT_VERSION}).encode()
    final = datasets / f"video-{_digest(_file_digest(video).encode(), settings)}"
    if (final / "dataset.json").is_file():
        return final
    from thkit.data.preprocess import preprocess

    # A fixed hidden name rather than a fresh temporary one: preprocess resumes an unfinished run there.
    partial = final.with_name(f".{final.name}.partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    preprocess(video, partial, fps=data.fps, size=data.image_size, progress=progress)
    _move_into_place(partial, final)
    return final


def _move_into_place(partial: Path, final: Path) -> None:
    """Rename a finished dataset to its final name; another process may have finished it first."""
    try:
        os.replace(partial, final)
    except OSError:
        if not (final / "dataset.json").is_file():
            raise


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
