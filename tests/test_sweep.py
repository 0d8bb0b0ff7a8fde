"""`quantal sweep`: grid x trials, resumable after a kill, identical on local processes and on Dask."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from quantal import sweep
from quantal.compile import ir
from quantal.compile.testing import random_network
from quantal.hwsim.devices import from_config
from quantal.pipeline import evaluate


@pytest.fixture(scope="module")
def netfile(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    net = random_network(np.random.default_rng(0), [64, 24, 10], release=0.5, readout=True)
    meta = {"input": {"encoder": "rate", "steps": 4, "max_rate": 1.0, "run_steps": 7}, "training": {"seed": 0}}
    net = net.replace(name="r", metadata=meta)
    return ir.save(net, d / "net.qnet")


def write(tmp_path, netfile, trials=3, **grid):
    p = tmp_path / "sw.yaml"
    g = grid or {"device": ["ideal", "pcm"], "time": [1, 86400]}
    import yaml

    p.write_text(yaml.safe_dump({"name": "t", "networks": {"a": str(netfile)}, "data": {"limit": 60},
                                 "trials": trials, "grid": g}))  # fmt: skip
    return p


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_task_is_one_trial_of_eval(tmp_path, netfile):
    sw = sweep.load(write(tmp_path, netfile))
    pt = next(p for p in sweep.points(sw) if p["device"] == "pcm" and p["time"] == 86400)
    rows = sweep.run_task({"path": str(netfile), "data": sw["data"], "seed": 0, "trials": [0, 1, 2], "point": pt})
    got = [r["accuracy"] for r in rows]
    assert [r["accuracy"] for r in sweep.run_task({"path": str(netfile), "data": sw["data"], "seed": 0,
                                                    "trials": [2], "point": pt})] == got[2:]  # fmt: skip
    want = evaluate(ir.load(netfile), "digits", trials=3, limit=60, device=from_config("pcm", time=86400))
    assert got == want["per_trial"]  # trial k of the sweep = trial k of a 3-trial eval


def test_local_and_dask_give_the_same_rows(tmp_path, netfile):
    from dask.distributed import LocalCluster

    p = write(tmp_path, netfile)
    local = sweep.run(p, tmp_path / "local", workers=2, progress=False, log=lambda *_: None)
    assert local["ran"] == 2 * 2 * 3
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        sweep.run(p, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False, log=lambda *_: None)
    a = {(r["key"], r["trial"]): r["accuracy"] for r in rows(tmp_path / "local" / "results.csv")}
    b = {(r["key"], r["trial"]): r["accuracy"] for r in rows(tmp_path / "dask" / "results.csv")}
    assert a == b and len(a) == 12
    summary = rows(tmp_path / "local" / "summary.csv")
    assert len(summary) == 4 and all(float(s["ci_lo"]) <= float(s["accuracy"]) <= float(s["ci_hi"]) for s in summary)
    assert (tmp_path / "local" / "sweep_time.png").stat().st_size > 0
    assert (tmp_path / "local" / "sweep_device.png").stat().st_size > 0


def test_a_killed_sweep_resumes_without_lost_or_duplicated_rows(tmp_path, netfile):
    p = write(tmp_path, netfile, trials=12, device=["ideal", "pcm"], time=[1, 3600, 86400])
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "quantal", "sweep", str(p), "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    res = out / "results.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not res.exists() or len(res.read_text().splitlines()) < 6):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(rows(res))
    assert 5 <= n_before < 72
    with open(res, "a") as f:
        f.write("deadbeef,a,pcm,1")  # a torn write: no newline, too few fields
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and "already done" in r.stdout, r.stderr
    got = rows(res)
    keys = [(g["key"], g["trial"]) for g in got]
    assert len(got) == 72 and len(set(keys)) == 72  # nothing lost, nothing twice


@pytest.mark.parametrize("grid,match", [
    ({"voltage": [1]}, "grid.voltage"), ({"device": ["flash"]}, "grid.device"), ({"time": [-1]}, "grid.time"),
    ({"weight_bits": [9]}, "weight_bits"), ({"release": [0]}, "release"),
])  # fmt: skip
def test_bad_sweep_files_name_the_key(tmp_path, netfile, grid, match):
    with pytest.raises(sweep.SweepError, match=match):
        sweep.load(write(tmp_path, netfile, **grid))


def test_cli_errors(tmp_path, netfile):
    r = subprocess.run([sys.executable, "-m", "quantal", "sweep", str(tmp_path / "none.yaml")], capture_output=True,
                       text=True)  # fmt: skip
    assert r.returncode == 2 and "no such file" in r.stderr
    p = write(tmp_path, netfile)
    r = subprocess.run([sys.executable, "-m", "quantal", "sweep", str(p), "--out", str(tmp_path / "x"), "--scheduler",
                        "tcp://127.0.0.1:9"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "--scheduler" in r.stderr and len(r.stderr.splitlines()) == 1
