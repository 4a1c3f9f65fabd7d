"""Experiments that measure the system rather than run it: the proving benches, the robustness
sweep on the numpy reference, and the gas of every protocol function."""
