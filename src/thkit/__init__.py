"""thkit: audio-driven talking-head avatars from spec files."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("thkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

import warnings

# nerfstudio's import-time decorators use an API torch deprecated; the warning is theirs and says
# nothing a thkit user can act on, so it is not shown on every command.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"nerfstudio\.")
