"""Does the forgetting hold? The robustness stages' logic, one module per stage, and what they share.

- `quantization.py`: the quantize stage (round-to-nearest and bitsandbytes low-bit variants);
- `relearning.py`: the relearn stage (a few fine-tuning steps, then the forget scores again);
- `representation.py`: the represent stage (per-layer drift, linear probes, logit lens);
- `readouts.py`: the represent stage's per-model part on disk (represent_readouts writes it);
- `probing.py`: the attack stage's probing of one model, stored by attack_probes for the target and the oracle;
- `common.py`: re-scoring a model variant, full-precision baselines, the recovered fraction;
- `scores.py`: the scores (knowledge recovered, cosine and drift norms), with formula and source;
- `plots.py`: each stage's figure.

Nothing is imported here: a stage imports the modules it runs, so its dvc.yaml deps list only
those files and an edit to one stage's module does not re-run the others.
"""
