"""StakeLearn on Flower (``pip install 'stakelearn[flower]'``): a proven Multi-Krum strategy for
the ServerApp and a mod for the ClientApp.

- :class:`ProvenMultiKrum` checks every reply against its client's signed commitment, proves
  the round (ezkl, locally or on Ray), submits it on chain, and returns the proven mean.
- :func:`stakelearn_mod` makes each train reply a committed one: the arrays quantized to the
  task's fixed point, their commitment signed by the client's signer (``stakelearn signer``,
  which holds the staked key), the chain node, task and signer from the SuperNode's own node
  config, never from the server.
- :func:`open_task` attaches to a posted task from its public task folder (``stakelearn task
  create``, or ``demo --setup-only``'s ``task/``), checked against the chain: protocol, task,
  round and enrolled clients. After the last epoch the requester reveals its evaluation set
  (``stakelearn task reveal``) and anyone proves the final model's accuracy on it
  (``stakelearn task settle``, with the aggregate the strategy saved), on which the contract pays.
"""

from stakelearn.pipeline.flower.client import commit_reply, stakelearn_mod
from stakelearn.pipeline.flower.strategy import ProvenMultiKrum
from stakelearn.pipeline.flower.task import ProvenTask, open_task

__all__ = ["ProvenMultiKrum", "ProvenTask", "commit_reply", "open_task", "stakelearn_mod"]
