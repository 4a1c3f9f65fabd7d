"""`stakelearn explorer`: a read-only web page of a protocol's tasks, from the chain alone
(``view``: the figures; ``server``: the aiohttp server and the page in ``page/``)."""
