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
    r = subprocess.run([*cmd, "--json"], capture_output=True, text=True)  # a finished sweep, as one JSON object
    import json

    res_json = json.loads(r.stdout)
    assert r.returncode == 0 and res_json["ran"] == 0 and res_json["skipped"] == res_json["tasks"]


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


def test_inline_devices_with_commas_in_their_labels_lose_no_rows(tmp_path, netfile):
    p = write(tmp_path, netfile, trials=2, device=["ideal", {"preset": "pcm", "drift_compensation": False}],
              time=[3600])  # fmt: skip
    out = tmp_path / "o"
    first = sweep.run(p, out, workers=1, progress=False, log=lambda *_: None)
    assert first["ran"] == 4
    label = sweep._device_label(sweep.load(p)["grid"]["device"][1])
    assert "," in label and "preset=pcm" in label  # a label with a comma, kept whole by the CSV files
    got = rows(out / "results.csv")
    assert len(got) == 4 and {g["device"] for g in got} == {"ideal", label}
    summary = rows(out / "summary.csv")
    assert [s["device"] for s in summary] == ["ideal", label]  # the grid's order
    again = sweep.run(p, out, workers=1, progress=False, log=lambda *_: None)
    assert again["ran"] == 0 and len(rows(out / "results.csv")) == 4


def test_a_second_sweep_into_the_same_folder_is_refused(tmp_path, netfile):
    p = write(tmp_path, netfile, trials=1)
    out = tmp_path / "o"
    out.mkdir()
    with sweep._locked(out):  # another sweep holds the folder
        with pytest.raises(sweep.SweepError, match="another sweep is writing"):
            sweep.run(p, out, workers=1, progress=False, log=lambda *_: None)
    assert not (out / "results.csv").exists()


def test_the_summary_does_not_depend_on_the_order_tasks_finished_in(tmp_path, netfile):
    p = write(tmp_path, netfile, trials=4, device=["ideal", "pcm"], release=[1.0, 0.5])
    out = tmp_path / "o"
    sweep.run(p, out, workers=2, progress=False, log=lambda *_: None)
    got = rows(out / "results.csv")
    rng = np.random.default_rng(0)
    a = sweep.summarize(got)
    b = sweep.summarize([got[i] for i in rng.permutation(len(got))])
    assert a == b
    summary = {(s["device"], s["release"]): s for s in rows(out / "summary.csv")}
    det = summary[("ideal", "1.0")]  # no stochastic synapse left, an ideal device: every trial is the same run
    assert "deterministic" in det["ci_method"] and float(det["ci_hi"]) > float(det["ci_lo"])
    assert summary[("pcm", "0.5")]["ci_method"].startswith("t-interval")
    assert all(0 <= float(s["ci_lo"]) <= float(s["ci_hi"]) <= 1 for s in summary.values())


def test_results_files_with_torn_or_foreign_lines(tmp_path):
    res = tmp_path / "results.csv"
    good = "0123456789ab,a,\"x,y\",1.0,8,,0,0.5,60,0.1\n"
    res.write_text(",".join(sweep.COLUMNS) + "\n" + good + good + "0123456789ab,a,\"x,y\",1.0,8,,1,0.7")
    got = sweep.read_results(res)
    assert len(got) == 1 and got[0]["device"] == "x,y"  # the duplicate and the torn last line are dropped
    assert res.read_text() == ",".join(sweep.COLUMNS) + "\n" + good
    res.write_text("a,b\n1,2\n")
    with pytest.raises(sweep.SweepError, match="not a quantal sweep results file"):
        sweep.read_results(res)


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 200])
def test_sweep_names_that_would_leave_the_runs_folder_are_refused(tmp_path, netfile, name):
    import yaml

    p = tmp_path / "sw.yaml"
    p.write_text(yaml.safe_dump({"name": name, "networks": {"a": str(netfile)}}))
    with pytest.raises(sweep.SweepError, match="name"):
        sweep.load(p)
