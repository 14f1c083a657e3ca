"""rung: measure the model ladder on your own task and data, then serve it."""

__version__ = "0.1.0"
