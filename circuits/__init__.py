"""The proven computations: numpy references and their torch twins exported to ONNX."""
