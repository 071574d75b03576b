"""Changing a model: fine-tuning (`finetune`), unlearning with the Trainer (`unlearning`) and its
objectives (`methods/`, one file a method), per-epoch measurements (`epoch_eval`), and deletion
requests applied one after another (`deletion`).

Imports: evaluation, models, data and the basics. Nothing is imported here.
"""
