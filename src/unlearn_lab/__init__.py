"""unlearn_lab: reproducible machine unlearning for small language models."""

import logging

__version__ = "0.1.0"

# transformers and peft import bitsandbytes whenever it is installed; on a CPU with AVX512-bf16 it
# then warns on stderr that an optional kernel package is missing (it falls back by itself), which
# would break every stage's one-line error output. Set before anything imports it.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
