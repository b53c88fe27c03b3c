"""One small error hierarchy; the CLIs turn any EdgeError into one line and a non-zero exit."""
import re


class EdgeError(Exception):
    """Base of every error a user can fix: the message says what happened and what to do."""


class ConfigError(EdgeError):
    """A bad config file, key or value."""


class ModelError(EdgeError):
    """A model file that is missing, unreadable, or does not match the ATPN/detector contract."""


class EngineError(EdgeError):
    """A runtime backend that cannot load or run a model (missing package, bad engine, no GPU)."""


class SourceError(EdgeError):
    """A frame source (camera, file, stream, folder) that cannot be opened or read."""


class CalibrationError(EdgeError):
    """An INT8 calibration set that is missing, empty or of the wrong shape."""


class DatasetError(EdgeError):
    """A dataset file (labels, list file, .mat, teacher labels) that is missing or malformed."""


def without_password(url: str) -> str:
    """A URL as logs and errors show it: scheme://user:***@host/... (textual, so it also works on a URL too
    broken to parse, which is when an error shows it)."""
    return re.sub(r"(//[^/@:]*:)[^/]*@", r"\1***@", url)
