"""The ServerApp: ProvenMultiKrum over the task's enrolled clients (or, to compare, Flower's own
MultiKrum); after each round the global model's accuracy on the held-out digits; after the
task's last epoch the requester reveals its set and the final model's accuracy is proven on it
(``stakelearn flower`` does both with the demo's keys; ``task reveal`` and ``task settle`` are
the commands). It writes ``<run-dir>/flower/<strategy>.json``: every round's metrics, accuracy
and wall time, and the accuracy proof's outcome."""

import json
import time
from pathlib import Path

import numpy as np
from eth_account import Account
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import MultiKrum

from stakelearn.files import write_json_atomic
from stakelearn.models.digits import accuracy, build
from stakelearn.pipeline.federation.task import make_federation
from stakelearn.pipeline.flower import ProvenMultiKrum, open_task
from stakelearn.pipeline.flower.arrays import to_vector
from stakelearn.pipeline.node.run_folder import config_from_json, load_run, model_path, task_dir
from stakelearn.progress import show_progress

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    show_progress()  # StakeLearn's progress lines (the accuracy proof's) in the app's output, as Flower's own
    settings = context.run_config
    run_dir = Path(str(settings["run-dir"])).resolve()
    run = load_run(run_dir)
    config = config_from_json(run["config"])
    k = config.krum
    initial = np.load(model_path(run_dir, 0))
    if settings["strategy"] == "proven":
        task = open_task(task_dir(run_dir), str(settings["rpc-url"]))
        aggregator = Account.from_key(run["keys"]["aggregator"])
        strategy = ProvenMultiKrum(
            task,
            aggregator,
            run_dir / "flower" / "rounds",
            num_malicious_nodes=k.f,
            num_nodes_to_select=k.m,
            ray_address=str(settings["ray-address"]) or None,
        )
        initial = strategy.start_model(initial)  # after a restart, the task's current model
    else:
        quorum = k.n - k.allowed_absent
        strategy = MultiKrum(
            num_malicious_nodes=k.f,
            num_nodes_to_select=k.m,
            fraction_evaluate=0.0,
            min_train_nodes=quorum,
            min_available_nodes=quorum,
        )
    test = make_federation(config).test
    marks = [time.perf_counter()]
    rounds = []

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        marks.append(time.perf_counter())
        score = accuracy(to_vector(arrays), test, config.hidden)
        if server_round:
            rounds.append({"round": server_round, "accuracy": score, "seconds": marks[-1] - marks[-2]})
        return MetricRecord({"accuracy": score})

    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(build(initial, config.hidden).state_dict()),
        num_rounds=int(settings["num-server-rounds"]),
        timeout=float(settings["round-timeout"]),
        evaluate_fn=evaluate,
    )
    summary = {"strategy": settings["strategy"], "rounds": rounds}
    for record in rounds:
        record["train"] = dict(result.train_metrics_clientapp.get(record["round"], {}))
    out = run_dir / "flower" / f"{settings['strategy']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, summary)
    print(json.dumps(summary, default=str))
