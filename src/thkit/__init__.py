"""thkit: audio-driven talking-head avatars from spec files."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("thkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
