"""Tidings: audiences and templated email/SMS sends, self-hosted."""

__version__ = "0.1.0"
