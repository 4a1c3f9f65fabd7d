"""The federated task without a chain: its arithmetic, the attacks, and the off-chain twins of
the contracts' flag and slash rules."""
