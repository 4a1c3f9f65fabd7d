"""The proving benches: one harness, the round and the chunked profiles on it."""
