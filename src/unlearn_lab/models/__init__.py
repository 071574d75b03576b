"""A model as this project reaches it: loading (local folder, embedded, hub id, tiny random), the
machine it runs on (`hardware`), where each family keeps its layers (`architecture`), and the
log-probabilities every training loss and metric is built on (`logprobs`, `global_mean`).

Imports: the basics (settings, io, errors, environment) only. Nothing is imported here, so a
stage's dvc.yaml deps list only the modules it runs.
"""
