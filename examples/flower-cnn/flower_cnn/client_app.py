"""Each SuperNode is one client: it trains the CNN on its shard and replies through
stakelearn_mod, which commits to the reply and has the client's own signer sign it. The task
folder, the chain node and the signer are the SuperNode's own settings, never the server's."""

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from flower_cnn.task import TinyCNN, shard, train
from stakelearn.pipeline.flower import stakelearn_mod
from stakelearn.progress import show_progress

show_progress()

app = ClientApp(mods=[stakelearn_mod])


@app.train()
def train_round(msg: Message, context: Context) -> Message:
    partition, partitions = int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])
    model = TinyCNN()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = shard(partition, partitions)
    train(model, x, y, seed=int(msg.content["config"]["server-round"]) * 100 + partition)
    metrics = MetricRecord({"num-examples": len(y)})
    return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}), reply_to=msg)
