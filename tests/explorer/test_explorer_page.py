"""The explorer's page in a real browser (Chromium from @sparticuz/chromium, driven by
Playwright), served over a task on the embedded EVM: it lists the epochs exactly as `audit`
rebuilds them, shows the slashed client's stake fall and the others' stay, draws the charts,
updates itself when the next epoch lands, logs no console error, and says in one line what is
wrong with an unknown task or a node that does not answer."""

import socket

import pytest

from stakelearn.pipeline.apps.audit import audit_chain
from stakelearn.pipeline.cli.explorer import connect
from stakelearn.pipeline.explorer.server import Explorer, RunningServer

from .browser import browser_page

REFRESH = 0.5


def listed(values) -> str:
    return ", ".join(str(v) for v in values) if values else "-"


def page_epochs(page) -> dict[int, dict[str, str]]:
    rows = {}
    for tr in page.query_selector_all("#epochs tbody tr"):
        cells = {td.get_attribute("data-field"): td.inner_text() for td in tr.query_selector_all("td[data-field]")}
        rows[int(tr.get_attribute("data-epoch"))] = cells
    return rows


def audit_epochs(protocol, task_id) -> dict[int, dict[str, str]]:
    problems, rounds = audit_chain(protocol, task_id)
    assert problems == []
    n = protocol.task_params(task_id).n
    return {
        r["epoch"]: {
            "selected": listed([i for i in range(n) if r["selected_mask"] >> i & 1]),
            "absent": listed(r["absent"]),
            "flagged": listed(r["flagged"]),
            "slashed": listed(r["slashed"]),
        }
        for r in rounds
    }


def test_the_page_shows_what_the_audit_rebuilds_and_follows_new_epochs(explored, tmp_path):
    world, task_id = explored
    explorer = Explorer(lambda: world.protocol, "the embedded EVM", refresh=REFRESH)
    third = world.round_args(task_id, 3)  # encoded before the browser's event loop runs in this thread
    with RunningServer(explorer) as server, browser_page() as (page, errors):
        page.goto(f"{server.url}?task={task_id}")
        page.wait_for_selector('#epochs tr[data-epoch="2"]')
        shown = page_epochs(page)
        expected = audit_epochs(world.protocol, task_id)
        assert {e: {k: row[k] for k in expected[e]} for e, row in shown.items()} == expected
        assert shown[1]["slashed"] == "4" and shown[1]["flagged"] == shown[2]["flagged"] == "4"
        assert all(row["verification"].startswith("verified") for row in shown.values())
        stakes = [page.inner_text(f'#parties tr[data-client="{i}"] [data-field=stake]') for i in range(5)]
        assert stakes == ["1.0000"] * 4 + ["0.8000"], "the equivocating client lost its penalty, nobody else a wei"
        for chart in ("scores-chart", "stakes-chart", "gas-chart"):
            assert page.query_selector(f"#{chart} canvas") is not None, f"{chart} is drawn"
        page.screenshot(path=tmp_path / "explorer.png", full_page=True)

        with explorer.lock:  # the server reads the embedded EVM on its own thread
            world.send(world.clients[0], world.protocol.tasks, "submitRound", third)
        page.wait_for_selector('#epochs tr[data-epoch="3"]', timeout=20_000)
        assert page_epochs(page)[3]["flagged"] == "4"
        assert errors == []


def test_the_task_list_links_every_task(explored):
    world, task_id = explored
    open_task = world.create_task()  # nobody enrolled yet: no epoch, no stake to draw
    with (
        RunningServer(Explorer(lambda: world.protocol, "the embedded EVM")) as server,
        browser_page() as (page, errors),
    ):
        page.goto(server.url)
        page.wait_for_selector("#task-list a")
        links = [a.inner_text() for a in page.query_selector_all("#task-list a")]
        assert links == [f"task {task_id}", f"task {open_task}"]
        page.click(f"#task-list a[href='?task={open_task}']")
        page.wait_for_selector("#task:not([hidden])")
        assert page.inner_text("#task-title") == f"Task {open_task}: open, 0 of 3 epochs"
        assert "enrollment closes" in page.inner_text("#deadlines")
        assert page.query_selector("#epochs tr[data-epoch]") is None
        page.go_back()
        page.click(f"#task-list a[href='?task={task_id}']")
        page.wait_for_selector("#epochs tr[data-epoch]")
        assert errors == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "case, expected",
    [
        ("unknown task", "task 9 does not exist on the protocol at"),
        ("silent node", "no EVM node answers at http://127.0.0.1:"),
        ("not a number", "'x' is not a task id"),
    ],
)
def test_bad_input_is_one_clear_line_on_the_page(world, case, expected):
    if case == "silent node":
        url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        explorer = Explorer(lambda: connect(url, world.protocol.tasks.address), url)
    else:
        explorer = Explorer(lambda: world.protocol, "the embedded EVM")
    task = {"unknown task": "9", "silent node": "1", "not a number": "x"}[case]
    with RunningServer(explorer) as server, browser_page() as (page, _):
        page.goto(f"{server.url}?task={task}")
        page.wait_for_selector("#message:not([hidden])")
        message = page.inner_text("#message")
        assert expected in message and "\n" not in message.strip()
        assert page.is_hidden("#task")


def test_only_requests_addressed_to_loopback_are_answered(world):
    """A page from another site whose name is made to resolve to 127.0.0.1 (DNS rebinding) sends
    its own Host: the explorer does not answer it."""
    import urllib.error
    import urllib.request

    with RunningServer(Explorer(lambda: world.protocol, "the embedded EVM")) as server:
        with urllib.request.urlopen(f"{server.url}api/tasks") as response:
            assert response.status == 200
        request = urllib.request.Request(f"{server.url}api/tasks", headers={"Host": f"evil.example:{server.port}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request)
        assert refused.value.code == 421


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--run", "no-such-folder"], "no-such-folder is not a run folder"),
        (["--contract", "0x0", "--refresh", "0"], "--refresh must be a positive number of seconds"),
        (["--task-dir", "no-such-folder"], "no-such-folder"),
        (["--contract", "0x0", "--port", "70000"], "--port must be 0..65535"),
    ],
)
def test_the_command_refuses_bad_input_in_one_line(tmp_path, arguments, expected):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "stakelearn.pipeline.cli", "explorer", "--rpc-url", "http://127.0.0.1:1", *arguments],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1 and expected in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_an_optimistic_claim_is_shown_pending_with_its_time_left_then_final(world):
    from stakelearn.pipeline.contracts.optimistic import Bundle, finalize, propose
    from stakelearn.pipeline.contracts.protocol import new_account
    from stakelearn.pipeline.contracts.types import ETHER

    from ..verifier_contracts.world import INITIAL_MODEL

    task_id = world.start_task(verification=1)
    claim = Bundle(world.round, world.proof_json.parent).claim(task_id, 1, INITIAL_MODEL, world.signatures(task_id, 1))
    _, outcome, _ = propose(world.protocol, new_account(world.chain, 10 * ETHER), claim, "file:///bundle")
    explorer = Explorer(lambda: world.protocol, "the embedded EVM", refresh=REFRESH)
    with RunningServer(explorer) as server, browser_page() as (page, errors):
        page.goto(f"{server.url}?task={task_id}")
        page.wait_for_selector('#epochs tr[data-claimed-epoch="1"]')
        claimed = page.inner_text('#epochs tr[data-claimed-epoch="1"] [data-field=verification]')
        assert claimed.startswith("claimed, pending:") and claimed.endswith("left"), claimed
        assert page.inner_text('#epochs tr[data-claimed-epoch="1"] [data-field=flagged]') == "4"
        assert page.inner_text("#claims [data-field=state]") == "pending"

        with explorer.lock:
            window_ends = world.protocol.rounds.functions.pending(task_id).call()[3]
            world.travel_to(window_ends + 1)
            finalize(world.protocol, world.clients[0], claim, outcome)
        page.wait_for_selector('#epochs tr[data-epoch="1"]', timeout=20_000)
        assert page.inner_text('#epochs tr[data-epoch="1"] [data-field=verification]') == (
            "final (its window passed unchallenged)"
        )
        assert page.query_selector("#epochs tr[data-claimed-epoch]") is None
        assert page.inner_text("#claims [data-field=state]") == "final"
        assert errors == []


def test_a_taken_port_is_refused_in_one_line(world):
    from stakelearn.errors import InputError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match=f"port {port} on 127.0.0.1 is taken.*choose another --port"):
            RunningServer(Explorer(lambda: world.protocol, "the embedded EVM"), port)
