"""The fusebench CLI, run directories, model backends and the evaluation runners."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fusebench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
