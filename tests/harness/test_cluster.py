"""Two Ray nodes on 127.0.0.1 (ray.cluster_utils.Cluster): `python -m harness sweep` joins the
cluster through its address and records which node ran which run. Harness tests."""

import json
import os
import shutil
import subprocess
import sys
import tempfile


def test_sweep_on_a_two_node_cluster_records_the_nodes(tmp_path, monkeypatch):
    from ray._private.authentication_test_utils import reset_auth_token_state
    from ray.cluster_utils import Cluster

    # Ray 2.60 leaves token authentication on; this process (which starts the nodes) must be in
    # token mode too. Without any token around (no local Ray ran yet), use a throwaway one.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.path.exists(
            os.path.expanduser("~/.ray/auth_token"))):
        monkeypatch.setenv("RAY_AUTH_TOKEN", os.urandom(16).hex())
    reset_auth_token_state()
    # Unix socket paths are limited to 107 bytes: pytest's tmp_path is too deep for Ray's files.
    ray_dir = tempfile.mkdtemp(prefix="ray-")
    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 1, "include_dashboard": False,
                                      "temp_dir": ray_dir})
    try:
        worker_node = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        out_dir = tmp_path / "sweep"
        done = subprocess.run(
            [sys.executable, "-m", "harness", "sweep", "experiment=smoke", "device=cpu_numpy",
             "train.steps=200", f"harness.ray_address={cluster.address}",
             f"harness.output_dir={out_dir}"],
            capture_output=True, text=True, timeout=240, env=dict(os.environ))
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"joined Ray at {cluster.address}" in done.stdout
        records = [json.load(open(out_dir / "runs" / name))
                   for name in os.listdir(out_dir / "runs")]
        nodes = {record["node"]["ray_node_id"] for record in records}
        assert len(records) == 2 and all(record["status"] == "ok" for record in records)
        assert nodes == {cluster.head_node.node_id, worker_node.node_id}
    finally:
        cluster.shutdown()
        shutil.rmtree(ray_dir, ignore_errors=True)
