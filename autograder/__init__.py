"""autograder: exact and statistical checks of learners' RL code against rlcore and published results.

Notebook test cells call `autograder.checks.chNN.<name>(learner_fn)`; `python -m autograder check
NOTEBOOK` executes a notebook headlessly and writes a Gradescope-style results file.
"""

__version__ = "0.1.0"
