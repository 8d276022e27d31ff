"""Jobs made of several runs, above ``engine`` (single runs) and ``viz`` (pictures).

* ``fpar.workflows.recipe``: ``run_recipe`` trains a chain of configs, each stage from the last's weights
* ``fpar.workflows.sweep``: ``run_sweep`` trains every combination of some settings
* ``fpar.workflows.report``: ``write_report`` evaluates runs once each and writes index.html (comparison table, pictures), report.md
* ``fpar.workflows.demo``: ``run_demo`` synthetic data -> training -> evaluation -> report, end to end
"""
