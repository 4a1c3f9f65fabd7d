"""The ezkl pipeline: settings, compile, SRS, setup with a key cache, witness, prove, verify,
EVM verifier and calldata. Every step is a function from files to files with fixed names."""
