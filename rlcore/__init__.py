"""rlcore: the reference implementation behind the Deep RL from Scratch course.

Small, readable and tested: tabular methods (`rlcore.tabular`), the Gymnasium episode loop
(`rlcore.evaluate`), returns (`rlcore.returns`), and, chapter by chapter, the deep RL algorithms.
"""

__version__ = "0.1.0"
