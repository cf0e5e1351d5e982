"""lanebench: which way of serving this model is fastest on my machine?"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lanebench")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
