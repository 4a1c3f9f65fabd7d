"""StakeLearn: trustless federated learning with proven Krum aggregation.

The code lives in the design card's top-level folders (``circuits/``, ``models/``, ``prover/``,
``verifier_contracts/``, ``pipeline/``), installed as ``stakelearn.<folder>``.
"""

__version__ = "0.1.0"
