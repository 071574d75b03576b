"""Runs compared with runs: experiments side by side (`comparison`, `seeds`, `audit`), grids
(`sweep`), the forget-set scale and documents studies (`scale`, `documents`), re-running the
committed pipeline (`verify`, `tolerances`) in a clone (`scratch`), and the docs tables they
write (`readme_blocks`).

Imports: anything below (robustness, training, evaluation, models, data, basics). Nothing is
imported here.
"""
