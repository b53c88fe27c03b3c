"""ATPN Edge: face alignment, head pose and face tracking with one light CNN, on Jetson."""

__version__ = "0.1.0"
