"""schedgen: operations toolkit for the UP Schedule Generator."""

__version__ = "0.1.0"
