"""Roles, the MPS rollup, the chain gateway, the round runner, reports and the CLI."""
