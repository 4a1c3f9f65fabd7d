"""The ServerApp, the aggregator: ProvenMultiKrum over the task's enrolled clients, every round
proven and submitted on chain with the aggregator's own key (STAKELEARN_AGGREGATOR_KEY in the
ServerApp's environment), the float model's accuracy on held-out digits after each round. It
writes ``<work-dir>/summary.json``; the rounds' aggregates stay in ``<work-dir>`` for
``stakelearn task settle``."""

import json
import time
from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from flower_cnn.task import TinyCNN, accuracy, held_out
from stakelearn.files import write_json_atomic
from stakelearn.pipeline.chain.accounts import load_account
from stakelearn.pipeline.flower import ProvenMultiKrum, open_task
from stakelearn.pipeline.flower.arrays import from_vector
from stakelearn.pipeline.node.task_description import read_task_folder
from stakelearn.progress import show_progress

app = ServerApp()
AGGREGATOR_KEY = "STAKELEARN_AGGREGATOR_KEY"


@app.main()
def main(grid: Grid, context: Context) -> None:
    show_progress()
    settings = context.run_config
    task_dir, work = Path(str(settings["task-dir"])).resolve(), Path(str(settings["work-dir"])).resolve()
    task = open_task(task_dir, str(settings["rpc-url"]))  # the folder and the verifiers' code, against the chain
    described = read_task_folder(task_dir)
    k = task.round.params
    strategy = ProvenMultiKrum(
        task, load_account(AGGREGATOR_KEY), work, num_malicious_nodes=k.f, num_nodes_to_select=k.m
    )
    initial = strategy.start_model(described.initial)  # after a restart, the task's current model
    x, y = held_out()
    marks, rounds = [time.perf_counter()], []

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        marks.append(time.perf_counter())
        model = TinyCNN()
        model.load_state_dict({name: torch.as_tensor(a.numpy()) for name, a in arrays.items()})
        score = accuracy(model, x, y)
        if server_round:
            rounds.append({"round": server_round, "accuracy": score, "seconds": marks[-1] - marks[-2]})
        return MetricRecord({"accuracy": score})

    result = strategy.start(
        grid=grid,
        initial_arrays=from_vector(initial, described.description.layout),
        num_rounds=int(settings["num-server-rounds"]),
        timeout=float(settings["round-timeout"]),
        evaluate_fn=evaluate,
    )
    for record in rounds:
        record["train"] = dict(result.train_metrics_clientapp.get(record["round"], {}))
    summary = {"strategy": "proven", "rounds": rounds, "work": str(work)}
    write_json_atomic(work / "summary.json", summary)
    print(json.dumps(summary, default=str))
