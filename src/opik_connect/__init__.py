"""opik-connect: the local half of Opik's log -> analyze -> test -> improve -> validate loop."""

__version__ = "0.1.0"
