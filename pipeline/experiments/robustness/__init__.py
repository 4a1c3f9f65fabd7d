"""The robustness sweep on the numpy reference: how Multi-Krum, NNM + Multi-Krum and the flag rule
hold up against each attack.

A flag only makes the client's epoch unpaid; stake is slashed only for equivocation (two signed
commitments for one task and epoch), which an honest client's signer never produces, so no
honest client is slashed, by construction, and the grid has no slashing to replay.

One module per job: ``simulation`` (one run), ``grid`` (every run, in a process pool),
``statistics`` (pure functions of a run's scores or of counts), ``sweep`` (the flag ratio chosen
on some seeds and judged on others, each cell's figures), ``targets`` (what the findings check),
``findings``, ``tables`` and ``report`` (the markdown report, its fixed prose in
``report.md.tmpl``), ``plot``, and ``run`` (the files: run and write, or rewrite the report).
"""
