"""ProvenMultiKrum: Flower's Multi-Krum, proven and settled on chain.

Each round, the strategy sends the global arrays with the epoch the chain takes next; every
reply must carry its client's signed commitment (``client.stakelearn_mod``). The strategy
recovers each signer, keeps only enrolled clients, re-derives each commitment from the arrays
it received and refuses what differs. The clients that did not reply in time, or whose reply was
refused, are absent: the round circuit scores them out, and the contract takes a round with at
most min(f, n - m - f, n - 2f - 3) absent clients once the epoch's commit window is over. The strategy
proves the round (ezkl; in chunks, locally or on Ray, for a task proven in chunks), submits it,
and returns the proven mean as the next global arrays.

Unlike Flower's MultiKrum, the selected updates are averaged with equal weights: the proof and
the chain's model commitment are of the plain sum over the m selected, so a reported
``num-examples`` cannot weigh a client up. Flower's own selection over the same replies is
reported next to the proven one (``flower-selected``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import MultiKrum
from flwr.serverapp.strategy.multikrum import select_multikrum

from stakelearn.circuits.krum import absent_distance, krum_round
from stakelearn.errors import InputError, StakeLearnError
from stakelearn.models.quantize import dequantize, quantize
from stakelearn.pipeline.contracts.signing import SIGNATURE_BYTES, signed_record
from stakelearn.pipeline.federation.task import next_global
from stakelearn.pipeline.flower.arrays import Layout, from_vector, layout_of, to_vector
from stakelearn.pipeline.flower.client import COMMITMENT, EPOCH
from stakelearn.pipeline.flower.task import ProvenTask
from stakelearn.pipeline.node.aggregator import send_round
from stakelearn.pipeline.node.run_folder import save_array
from stakelearn.pipeline.node.signer import COMMITMENT_BYTES

log = logging.getLogger(__name__)

AGGREGATE = "aggregate-epoch-{epoch:03d}.npy"  # in the work folder: a proven round's aggregate, to resume from


def saved_aggregate(work: Path, epoch: int) -> np.ndarray:
    """The aggregate of ``epoch``'s proven round, as the strategy saved it in its work folder."""
    path = work / AGGREGATE.format(epoch=epoch)
    if not path.is_file():
        raise InputError(f"{path} is missing: give the work folder the task's rounds were proven in")
    return np.load(path)


def say(message: str) -> None:
    log.info(f"ProvenMultiKrum: {message}")


@dataclass(frozen=True)
class CheckedReply:
    """One client's reply as :func:`check_reply` accepted it: every field ``aggregate_train``
    uses, typed and checked."""

    slot: int
    update: np.ndarray  # the quantized update, as committed
    commitment: bytes
    signature: bytes
    seconds: float  # what committing and signing cost the client, as it reports it


def _field(signed: ConfigRecord, name: str, kind: type):
    value = signed.get(name)
    if type(value) is not kind or (kind is float and not math.isfinite(value)):
        raise InputError(f"its {name} is not a {'finite number' if kind is float else kind.__name__} ({value!r:.40})")
    return value


def check_reply(task: ProvenTask, epoch: int, clients: list[str], layout: Layout, reply: Message) -> CheckedReply:
    """The reply as a :class:`CheckedReply`, or InputError saying why it is refused: it is an
    error, lacks its arrays, metrics or signed commitment, is not the global arrays' layout, has
    a commitment or signature of the wrong type or length, is not signed by an enrolled client
    for this epoch, or its arrays differ from what the client committed to. The one place where
    a reply's content is read."""
    if reply.has_error():
        raise InputError(f"error reply ({reply.error.reason})")
    content = reply.content
    arrays = content.array_records.get("arrays")
    signed = content.config_records.get(COMMITMENT)
    if arrays is None or signed is None:
        raise InputError("no arrays or no signed commitment")
    if content.metric_records.get("metrics") is None:
        raise InputError("no metrics record")
    if layout_of(arrays) != layout:
        raise InputError("its arrays are not the global model's layout")
    commitment, signature = _field(signed, "commitment", bytes), _field(signed, "signature", bytes)
    seconds = float(_field(signed, "seconds", float)) if "seconds" in signed else 0.0
    if len(commitment) != COMMITMENT_BYTES or len(signature) != SIGNATURE_BYTES:
        raise InputError(
            f"a commitment of {len(commitment)} bytes and a signature of {len(signature)}: "
            f"{COMMITMENT_BYTES} and {SIGNATURE_BYTES} expected"
        )
    try:
        signer = task.protocol.recover_signer(task.task_id, epoch, commitment, signature)
    except Exception as error:  # noqa: BLE001 - eth_keys raises its own types for bad signatures
        raise InputError(f"its signature recovers no signer ({type(error).__name__}: {error})") from None
    if signer not in clients:
        raise InputError(f"signed by {signer}, not an enrolled client of task {task.task_id} epoch {epoch}")
    slot = clients.index(signer)
    update = quantize(to_vector(arrays), task.fixed_point)
    if task.round.update_commitment(update, slot) != commitment:
        raise InputError(f"slot {slot}'s arrays differ from its signed commitment")
    return CheckedReply(slot, update, commitment, signature, seconds)


def accepted_replies(
    task: ProvenTask, epoch: int, clients: list[str], layout: Layout, replies: Iterable[Message]
) -> tuple[dict[int, CheckedReply], list[str]]:
    """Each enrolled client's checked reply by slot, and one line per refused reply
    (:func:`check_reply`; a second reply for a slot is refused too). Nothing a reply holds can
    raise out of here: a reply is checked alone, and whatever goes wrong refuses that reply."""
    accepted, refused = {}, []
    for reply in replies:
        try:
            node = reply.metadata.src_node_id
        except Exception:  # noqa: BLE001
            node = "?"
        try:
            checked = check_reply(task, epoch, clients, layout, reply)
            if checked.slot in accepted:
                raise InputError(f"a second reply for slot {checked.slot}")
            accepted[checked.slot] = checked
        except Exception as error:  # noqa: BLE001 - whatever one reply holds must not stop the round
            refused.append(f"node {node}: {error}")
    return accepted, refused


def flower_selection(task: ProvenTask, accepted: dict[int, CheckedReply], layout: Layout) -> list[int]:
    """The slots Flower's own MultiKrum selects from the same replies (its float scoring, over
    the replies present, of their committed grid values)."""
    slots = sorted(accepted)
    contents = [
        RecordDict({"arrays": from_vector(dequantize(accepted[s].update, task.fixed_point), layout)}) for s in slots
    ]
    params = task.round.params
    chosen = select_multikrum(contents, num_malicious_nodes=params.f, num_nodes_to_select=params.m)
    return sorted(slots[next(i for i, c in enumerate(contents) if c is chosen_one)] for chosen_one in chosen)


def wait_for_commit_window(task: ProvenTask) -> None:
    """A round with absent clients lands only after the epoch's commit window: wait it out."""
    deadline = task.protocol.tasks.functions.commitDeadline(task.task_id).call()
    while (left := deadline + 1 - max(time.time(), task.protocol.chain.latest_timestamp())) > 0:
        say(f"absent clients: waiting {left:.0f} s for the epoch's commit window to close")
        time.sleep(min(left, 10))


class ProvenMultiKrum(MultiKrum):
    """Multi-Krum over the task's enrolled clients, every round proven and submitted on chain.

    ``task`` is the posted task (:func:`task.open_task`), ``account`` the aggregator's key and
    ``work`` a folder for the round proofs. ``num_malicious_nodes`` and ``num_nodes_to_select``,
    if given, must be the task's f and m. Every available node is sent each round (a proven
    round has a slot for every enrolled client); the round waits for at least n - min(f, n - m -
    f) nodes. ``ray_address`` proves a chunked task's chunks on a Ray cluster."""

    def __init__(
        self,
        task: ProvenTask,
        account,
        work: Path,
        *,
        num_malicious_nodes: int | None = None,
        num_nodes_to_select: int | None = None,
        ray_address: str | None = None,
        **fedavg_options,
    ) -> None:
        params = task.round.params
        for name, given, own in (
            ("num_malicious_nodes", num_malicious_nodes, params.f),
            ("num_nodes_to_select", num_nodes_to_select, params.m),
        ):
            if given is not None and given != own:
                raise InputError(f"{name}={given}, but task {task.task_id} is proven with {own}")
        quorum = params.n - params.allowed_absent
        fedavg_options = {"fraction_evaluate": 0.0, **fedavg_options, "fraction_train": 1.0}
        fedavg_options.setdefault("min_train_nodes", quorum)
        fedavg_options.setdefault("min_available_nodes", quorum)
        super().__init__(num_malicious_nodes=params.f, num_nodes_to_select=params.m, **fedavg_options)
        self.task, self.account, self.work, self.ray_address = task, account, Path(work), ray_address
        self.layout: Layout | None = None
        self.rounds: list[dict] = []  # one record per round, as its metrics report it
        self.aggregate: np.ndarray | None = None  # the last proven round's sum over the selected

    def start_model(self, initial: np.ndarray) -> np.ndarray:
        """The global model to start from: ``initial`` before the task's first round; after it,
        the proven mean of the chain's last round, from the aggregate saved in ``work`` when that
        round was proven and checked against the chain's commitment. A restarted ServerApp
        resumes its task so (its clients refuse any model the chain does not record)."""
        task, state = self.task, self.task.protocol.task(self.task.task_id)
        if state.epochs_run == 0:
            return initial
        path = self.work / AGGREGATE.format(epoch=state.epochs_run)
        try:
            aggregate = np.load(path)
        except (OSError, ValueError) as error:
            raise InputError(
                f"task {task.task_id} is at epoch {state.epochs_run} and {path} is missing or unreadable: "
                "start the server with the work folder its rounds were proven in"
            ) from error
        if task.model_of(aggregate) != state.global_model:
            raise InputError(
                f"{path} is not the aggregate task {task.task_id}'s chain records for epoch {state.epochs_run}: "
                "start the server with the work folder its rounds were proven in"
            )
        self.aggregate = aggregate
        return next_global(aggregate, task.round.params.weight, task.fixed_point)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        config[EPOCH] = self.task.open_epoch()  # the clients check it against the chain
        self.layout = layout_of(arrays)
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        started = time.perf_counter()
        task, params = self.task, self.task.round.params
        epoch, clients = task.open_epoch(), task.clients()
        accepted, refused = accepted_replies(task, epoch, clients, self.layout, replies)
        for line in refused:
            say(f"round {server_round}: refused {line}")
        absent = np.array([slot not in accepted for slot in range(params.n)])
        record = {"server-round": server_round, "epoch": epoch, "absent": np.flatnonzero(absent).tolist()}
        if absent.sum() > params.allowed_absent:
            say(
                f"round {server_round}: {absent.sum()} of {params.n} clients absent, the round takes at most "
                f"{params.allowed_absent}: no round for epoch {epoch}, the global model stays"
            )
            self.rounds.append(record)
            return None, MetricRecord({"epoch": epoch, "absent": record["absent"]})
        record["flower-selected"] = flower_selection(task, accepted, self.layout)
        record["commit-seconds"] = max(checked.seconds for checked in accepted.values())
        updates = np.zeros((params.n, sum(int(np.prod(shape)) for _, shape in self.layout)), dtype=np.int64)
        for slot, checked in accepted.items():
            updates[slot] = checked.update
        # The distance an absent slot is pushed away by: the round circuit's, or the combine circuit's for d.
        far = absent_distance(params, updates.shape[1], task.round.prepared.circuit.max_int)
        reference = krum_round(updates, params, absent, far)
        record["scores"] = [float(s) for s in reference.scores]
        record["check-seconds"] = time.perf_counter() - started
        if absent.any():
            wait_for_commit_window(task)
        folder, proving = self.work / f"epoch-{epoch:03d}-round-{server_round:03d}", time.perf_counter()
        self.prove(epoch, updates, absent, accepted, clients, folder)
        record["prove-seconds"] = time.perf_counter() - proving
        save_array(self.work / AGGREGATE.format(epoch=epoch), reference.total)  # before it lands: see start_model
        submitting = time.perf_counter()
        record.update(self.submit(epoch, folder))
        record["submit-seconds"] = time.perf_counter() - submitting
        if record["selected"] != list(reference.selected):
            raise StakeLearnError(
                f"epoch {epoch}: the chain selected {record['selected']}, the reference {reference.selected}"
            )
        self.rounds.append(record)
        say(
            f"round {server_round} (epoch {epoch}): selected {record['selected']}, flagged {record['flagged']}, "
            f"slashed {record['slashed']}, absent {record['absent']}, gas {record['gas']:,}"
        )
        self.aggregate = reference.total
        mean = next_global(reference.total, params.weight, task.fixed_point)
        return from_vector(mean, self.layout), MetricRecord(record)

    def prove(self, epoch: int, updates, absent, accepted: dict, clients: list[str], folder: Path) -> None:
        task = self.task
        signed = [
            signed_record(
                slot,
                clients[slot],
                task.protocol.update_commitment(task.task_id, epoch, accepted[slot].commitment),
                accepted[slot].signature,
            )
            for slot in sorted(accepted)
        ]
        say(f"epoch {epoch}: proving the round over {len(accepted)} committed updates")
        task.round.prove(updates, folder, absent=absent, signed=signed, ray_address=self.ray_address)

    def submit(self, epoch: int, folder: Path) -> dict:
        """Stage a chunked round's chunk proofs, submit the round; what the chain decided."""
        task, n = self.task, self.task.round.params.n
        # The folder was verified when proven here (as the demo's aggregator does, not submit_round's re-check).
        receipt, staging_gas = send_round(task.protocol, self.account, task.task_id, epoch, folder, task.round)
        (event,) = task.protocol.events_in(receipt, "RoundSubmitted")
        slashed, clients = task.protocol.events_in(receipt, "ClientSlashed"), task.clients()
        return {
            "selected": slots(event["args"]["selectedMask"], n),
            "flagged": slots(event["args"]["flaggedMask"], n),
            "slashed": sorted(clients.index(e["args"]["client"]) for e in slashed),
            "gas": receipt["gasUsed"] + staging_gas,
        }


def slots(mask: int, n: int) -> list[int]:
    return [i for i in range(n) if mask >> i & 1]
