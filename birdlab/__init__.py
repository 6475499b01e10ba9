"""birdlab: bird-call classification from BirdCLEF 2021 to a Raspberry Pi."""

__version__ = "0.1.0"
