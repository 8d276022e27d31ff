"""Two nodes simulated on one machine: two `fpar train` processes joined by Lightning's DDP over
gloo, as `srun` or `torchrun` would start them on two machines (docs/scale.md, "Many machines"),
end with the weights one process reaches with the same global batch."""

import socket
import subprocess
import sys

import torch

from fpar.checkpoint import load_checkpoint, model_state_dict

from helpers.tiny import subprocess_env, tiny_config, write_config

GLOBAL_BATCH = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_command(config, data, out, *extra):
    return [sys.executable, "-m", "fpar", "train", str(config), "--data", str(data), "--out", str(out),
            "--no-progress", "trainer.accelerator=cpu", *extra]


def test_two_nodes_end_with_the_weights_of_one_process(tiny_data, tmp_path):
    # dropout off: its masks are drawn per rank, the only draw that depends on how the batch is split
    # (crops, flips and the shuffle are drawn from (seed, epoch, clip), docs/training.md). SGD, not
    # Adam: Adam divides each gradient by its own running size, so the last-bit differences of a
    # parameter whose gradient is near zero grow to a full step.
    config = tiny_config(experiment="nodes", trainer={"epochs": 1, "batch_size": GLOBAL_BATCH},
                         optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9})
    config["model"]["dropout"] = 0.0
    single_cfg = write_config(tmp_path / "single.yaml", config)
    subprocess.run(train_command(single_cfg, tiny_data, tmp_path / "single"), env=subprocess_env(), check=True,
                   capture_output=True, timeout=300)

    config["trainer"]["batch_size"] = GLOBAL_BATCH // 2  # per process: the same global batch
    nodes_cfg = write_config(tmp_path / "nodes.yaml", config)
    port = str(free_port())
    nodes = []
    for node in (0, 1):
        # what a cluster launcher sets on each machine (one process per node here)
        env = {**subprocess_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "NODE_RANK": str(node),
               "LOCAL_RANK": "0", "RANK": str(node), "WORLD_SIZE": "2"}
        nodes.append(subprocess.Popen(train_command(nodes_cfg, tiny_data, tmp_path / "shared", "--num-nodes", "2",
                                                    "--devices", "1", "trainer.strategy=ddp"),
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]

    # one run folder on the shared disk, written by node 0 alone
    assert sorted(p.name for p in (tmp_path / "shared").iterdir() if not p.name.startswith(".")) == ["nodes"]
    one = model_state_dict(load_checkpoint(tmp_path / "single" / "nodes" / "last.ckpt"))
    two = model_state_dict(load_checkpoint(tmp_path / "shared" / "nodes" / "last.ckpt"))
    assert one.keys() == two.keys()
    for key in one:
        if one[key].is_floating_point():
            # the same updates; only the order of the gradient sums differs (allreduce of two means)
            torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-6, msg=key)
    assert load_checkpoint(tmp_path / "shared" / "nodes" / "last.ckpt")["global_step"] == 3  # 12 clips, global batch 4
