"""`python -m unlearn_lab.training.methods.names`: every method name (aliases included) but the committed
default, space-separated, read from this folder's file names without importing torch (the
Makefile's `make methods` list)."""
from ...settings.knobs import method_names

DEFAULT = "npo"  # params.yaml's committed `method:`, the pipeline's own run

if __name__ == "__main__":
    print(" ".join(name for name in method_names() if name != DEFAULT))
