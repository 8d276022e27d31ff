"""fpar: first-person action recognition (Ego-RNN, MS self-supervision, two-in-one flow modulation)."""

__version__ = "0.1.0"
