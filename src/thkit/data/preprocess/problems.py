"""What can be wrong with an input video short of making it unusable: one warning class per problem.

Unusable input (no file, corrupt, no audio, too short, no face) raises `ThkitError` where it is
found. The warnings below mean the dataset was written but part of it deserves a look; each is
also listed in dataset.json under `extra.warnings`.
"""

from __future__ import annotations

MIN_SECONDS = 10  # shorter clips cannot train a subject; the peers ask for 1-5 minutes


class PreprocessWarning(UserWarning):
    """The video was preprocessed, but part of the result may be unreliable."""


class VariableFrameRateWarning(PreprocessWarning):
    """Frame intervals vary; frames are picked by their timestamps, not their count."""


class MultipleFacesWarning(PreprocessWarning):
    """More than one face was seen; the largest one (and then the same one) was kept."""


class FaceDropoutWarning(PreprocessWarning):
    """The face was lost for longer than can be interpolated."""


class MovingCameraWarning(PreprocessWarning):
    """The background changes over the clip, so the background plate and masks are unreliable."""


class AudioLengthWarning(PreprocessWarning):
    """The audio ends well before the video (it is padded with silence) or starts late."""
