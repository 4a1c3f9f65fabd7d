"""The applications the CLI runs: demo, audit, robustness, bench, gas, and their reports."""
