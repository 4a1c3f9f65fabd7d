"""Each SuperNode is one client of the task: it trains on its shard of the digits data (the
task's attackers attack) and replies through stakelearn_mod, which commits to the reply and has
the client's signer sign it. The task's folder, like the chain node and the signer, is the
SuperNode's own setting (node config ``task-dir``, or ``STAKELEARN_TASK_DIR``), not the run
config's."""

from functools import cache
from pathlib import Path

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from stakelearn.models.digits import one_torch_thread
from stakelearn.pipeline.federation.task import Federation, lone_client_model, make_federation
from stakelearn.pipeline.flower import stakelearn_mod
from stakelearn.pipeline.flower.arrays import from_vector, layout_of, to_vector
from stakelearn.pipeline.flower.client import node_setting
from stakelearn.pipeline.node.run_folder import load_federation_config
from stakelearn.progress import show_progress

show_progress()  # StakeLearn's progress lines beside Flower's own

app = ClientApp(mods=[stakelearn_mod])


@cache
def federation(task_dir: str) -> Federation:
    # The demo's simulated clients: their data and attacks as its run folder's federation.json
    # (beside the public task folder) sets them; a real client trains on data of its own.
    return make_federation(load_federation_config(Path(task_dir).parent))


@app.train()
def train(msg: Message, context: Context) -> Message:
    data = federation(node_setting(context, "task-dir"))
    client = int(context.node_config["partition-id"])
    arrays = msg.content["arrays"]
    with one_torch_thread():
        model = lone_client_model(data, to_vector(arrays), int(msg.content["config"]["server-round"]), client)
    metrics = MetricRecord({"num-examples": len(data.shards[client])})
    return Message(RecordDict({"arrays": from_vector(model, layout_of(arrays)), "metrics": metrics}), reply_to=msg)
