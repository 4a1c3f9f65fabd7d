"""Random sequences of stake, enroll, submit, slash, settle and withdraw against a Python
model of what everyone is owed. After every step the contracts' ether equals stakes + escrow +
unpaid credits + base fees + slashed funds, and nobody's credit differs from what it is owed."""

from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.prover.circuit import prepare

from .world import ETHER, make_world

PAID = (0, 1, 2, 3)  # the session round flags client 4 alone, every epoch: the others are paid


@pytest.mark.slow  # 71 s; tests/verifier_contracts/test_protocol.py checks each function's accounting in CI
def test_protocol_accounting_state_machine(small_circuit, proven_round, small_accuracy):
    prepared = prepare(small_circuit)
    world = None
    steps_taken = Counter()

    class Accounting(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            nonlocal world
            world = make_world(Chain.embedded(), prepared, proven_round, small_accuracy)  # a fresh chain per example
            self.tasks = {}  # task id -> dict(status, epochs, fee, run)
            self.owed = {}  # address -> credit the model says is owed
            self.unbonding = set()
            self.locks = {c.address: 0 for c in world.clients}

        def _open(self):
            return [t for t, s in self.tasks.items() if s["status"] == "open"]

        def _active(self):
            return [t for t, s in self.tasks.items() if s["status"] == "active"]

        def _settleable(self):
            """Tasks whose training ended or can be ended (at least one epoch run)."""
            return [
                t
                for t, s in self.tasks.items()
                if s["status"] == "evaluating" or (s["status"] == "active" and s["run"])
            ]

        @initialize()
        def a_running_task(self):
            """Every sequence starts with one task under way, so the paying paths are reachable."""
            task_id = world.start_task(epochs=2, fee=10**17)
            self.tasks[task_id] = {"status": "active", "epochs": 2, "fee": 10**17, "run": 0}
            for client in world.clients:
                self.locks[client.address] += 1

        @rule(epochs=st.integers(1, 2), fee=st.sampled_from([0, 10**15, 10**17]))
        def create_task(self, epochs, fee):
            steps_taken["create_task"] += 1
            task_id = world.create_task(epochs=epochs, fee=fee)
            self.tasks[task_id] = {"status": "open", "epochs": epochs, "fee": fee, "run": 0}

        @precondition(lambda self: self._open())
        @rule(data=st.data())
        def enroll_all(self, data):
            steps_taken["enroll_all"] += 1
            task_id = data.draw(st.sampled_from(self._open()))
            if any(c.address in self.unbonding for c in world.clients):
                assert world.chain.revert_name(world.clients[0], world.protocol.tasks, "enroll", task_id) in (
                    None,
                    "StakingRegistry__Unbonding",
                )
                return
            for client in world.clients:
                world.send(client, world.protocol.tasks, "enroll", task_id)
                self.locks[client.address] += 1
            self.tasks[task_id]["status"] = "active"

        @precondition(lambda self: self._open())
        @rule(data=st.data())
        def cancel(self, data):
            steps_taken["cancel"] += 1
            task_id = data.draw(st.sampled_from(self._open()))
            world.send(world.requester, world.protocol.tasks, "cancel", task_id)
            task = self.tasks[task_id]
            task["status"] = "cancelled"
            self.owed[world.requester.address] = (
                self.owed.get(world.requester.address, 0) + task["epochs"] * task["fee"]
            )

        @precondition(lambda self: any(self.tasks[t]["run"] < self.tasks[t]["epochs"] for t in self._active()))
        @rule(data=st.data())
        def submit(self, data):
            steps_taken["submit"] += 1
            task_id = data.draw(
                st.sampled_from([t for t in self._active() if self.tasks[t]["run"] < self.tasks[t]["epochs"]])
            )
            task = self.tasks[task_id]
            world.send(
                world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, task["run"] + 1)
            )
            task["run"] += 1
            if task["run"] == task["epochs"]:
                task["status"] = "evaluating"  # the last epoch ends training

        @precondition(lambda self: self._settleable())
        @rule(data=st.data())
        def settle(self, data):
            steps_taken["settle"] += 1
            task_id = data.draw(st.sampled_from(self._settleable()))
            task = self.tasks[task_id]
            world.finish(task_id)  # no accuracy proof by the deadline: the escrow is forfeited
            escrow = task["epochs"] * task["fee"]
            rewarded = 0
            if task["run"]:
                for i in PAID:
                    share = escrow * task["run"] // (len(PAID) * task["run"])
                    address = world.clients[i].address
                    self.owed[address] = self.owed.get(address, 0) + share
                    rewarded += share
            self.owed[world.requester.address] = (
                self.owed.get(world.requester.address, 0) + task["epochs"] * task["fee"] - rewarded
            )
            task["status"] = "completed"
            for client in world.clients:
                self.locks[client.address] -= 1

        @rule(who=st.integers(0, 5))
        def withdraw_credit(self, who):
            steps_taken["withdraw_credit"] += 1
            account = world.requester if who == 5 else world.clients[who]
            if self.owed.get(account.address, 0) == 0:
                assert (
                    world.chain.revert_name(account, world.protocol.tasks, "withdrawCredit")
                    == "RewardManager__NothingToWithdraw"
                )
                return
            world.send(account, world.protocol.tasks, "withdrawCredit")
            self.owed[account.address] = 0

        @rule(who=st.integers(0, 4))
        def unbond_and_withdraw(self, who):
            steps_taken["unbond_and_withdraw"] += 1
            client = world.clients[who]
            if client.address not in self.unbonding:
                world.send(client, world.protocol.registry, "requestWithdrawal")
                self.unbonding.add(client.address)
                return
            world.chain.w3.testing.timeTravel(world.chain.w3.eth.get_block("latest")["timestamp"] + 3601)
            if self.locks[client.address]:
                assert (
                    world.chain.revert_name(client, world.protocol.registry, "withdraw")
                    == "StakingRegistry__StakeLocked"
                )
                return
            world.send(client, world.protocol.registry, "withdraw")
            self.unbonding.discard(client.address)
            world.send(client, world.protocol.registry, "stake", value=ETHER)  # back in for later tasks

        @invariant()
        def ether_adds_up(self):
            assert world.balances_add_up()

        @invariant()
        def credits_are_what_is_owed(self):
            for account in [world.requester, *world.clients]:
                assert world.protocol.tasks.functions.creditOf(account.address).call() == self.owed.get(
                    account.address, 0
                )

    run_state_machine_as_test(
        Accounting,
        settings=settings(
            max_examples=6,
            stateful_step_count=10,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
    # Derandomized, so the same sequences run every time; they must reach the paying paths.
    assert steps_taken["submit"] and steps_taken["settle"] and steps_taken["withdraw_credit"], steps_taken
