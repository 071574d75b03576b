"""unlearn_lab: reproducible machine unlearning for small language models."""

__version__ = "0.1.0"
