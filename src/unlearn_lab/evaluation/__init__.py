"""Measuring one model: question sets (`questions`), documents (`documents`), the metric
functions and their table (`metrics/`), bootstrap intervals (`intervals`), the run's figures
(`plots`) and the summary of a run's metrics files (`report`).

Imports: models, data and the basics. Nothing is imported here.
"""
