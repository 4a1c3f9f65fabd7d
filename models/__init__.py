"""Federated-learning models, update flattening and fixed-point quantization."""
