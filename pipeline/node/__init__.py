"""The participants' nodes: client, aggregator and requester, the aggregator's store, and the
run folder that holds one task's files."""
