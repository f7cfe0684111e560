"""The shared artifact cache and Dask builds (issue 17), offline on this machine.

A small zoo (two MTCNN stages, two cheap targets each) is built through a
``distributed.LocalCluster(n_workers=2, threads_per_worker=1)`` with a cache in a temporary
directory, then again from a fresh copy of the zoo with an empty build directory: every action
must be a hit and every file of the build (artifacts, verify.json, golden data, report) must be
byte-identical. A worker killed mid-build is retried elsewhere and the cache holds nothing
half-made; Ctrl-C stops a ``--workers`` build. The s3:// cache runs against moto's S3 server on
127.0.0.1: the same hits and misses, and a corrupted object is detected and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.zoo_env import offline_zoo_env

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

REPO = Path(__file__).resolve().parents[1]
# model -> targets kept (the cheap ones: the chain is the same for every format)
SMALL_ZOO = {"mtcnn-det1": ["onnx", "onnx-fp16"], "mtcnn-det2": ["onnx"]}
# fetch convert optimize reference + export/measure per target
ACTIONS = sum(4 + 2 * len(t) for t in SMALL_ZOO.values())


def make_zoo(base: Path, zoo: dict[str, list[str]] = SMALL_ZOO) -> Path:
    """A fresh 'clone': base/recipes with the zoo's recipes, trimmed to the targets kept."""
    recipes = base / "recipes"
    recipes.mkdir(parents=True)
    for model_id, targets in zoo.items():
        recipe = yaml.safe_load((REPO / "recipes" / f"{model_id}.yaml").read_text())
        recipe["targets"] = {t: recipe["targets"][t] for t in targets}
        (recipes / f"{model_id}.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return recipes


def zoomake(base: Path, models_dir: Path, *args: str, env: dict | None = None, **kw):
    env = {**offline_zoo_env(base, base / "recipes", models_dir), **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipelines", "build", *args], cwd=base,
                          env=env, capture_output=True, text=True, timeout=600, **kw)  # fmt: skip


def tree(build: Path) -> dict[str, bytes]:
    """Every file of a build but doit's database, the lock and the private caches."""
    out = {}
    for f in sorted(build.rglob("*")):
        rel = f.relative_to(build).as_posix()
        if f.is_file() and rel not in (".doit.db", ".lock") and not rel.startswith(".cache/"):
            out[rel] = f.read_bytes()
    return out


def check_cache(cache: Path) -> int:
    """Every action record's objects are there, whole, with the sha256 they are named by."""
    records = sorted((cache / "ac").glob("*.json"))
    for record in records:
        for name, out in json.loads(record.read_text())["outputs"].items():
            data = (cache / "cas" / out["sha256"]).read_bytes()
            assert len(data) == out["size"], (record.name, name)
            assert hashlib.sha256(data).hexdigest() == out["sha256"], (record.name, name)
    return len(records)


def check_report(build: Path) -> None:
    report = json.loads((build / "report" / "report.json").read_text())
    got = {(m["id"], t["name"]): t["status"] for m in report["models"] for t in m["targets"]}
    assert got == {(m, t): "passed" for m, ts in SMALL_ZOO.items() for t in ts}


def dask_line(out: str) -> tuple[int, int, int]:
    m = re.search(r"^dask: \d+ of \d+ models .*: (\d+) actions run, (\d+) cache hits, (\d+) failed",
                  out, re.M)  # fmt: skip
    assert m, out
    return tuple(int(g) for g in m.groups())


def cache_line(out: str) -> tuple[int, int]:
    m = re.search(r"^remote cache \S+: (\d+) hits, (\d+) misses", out, re.M)
    assert m, out
    return int(m.group(1)), int(m.group(2))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, models_dir):
    """Two single-threaded worker processes, started with the offline zoo's environment."""
    base = tmp_path_factory.mktemp("cluster")
    saved = dict(os.environ)
    os.environ.update({"ZOOMAKE_MIRROR": str(models_dir), "ZOOMAKE_OFFLINE": "1",
                       "ZOOMAKE_CACHE": str(base / "downloads")})  # fmt: skip
    try:
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as lc,
            distributed.Client(lc) as client,
        ):
            yield lc, client
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_dask_build_then_fresh_clone_is_all_hits_and_byte_identical(cluster, tmp_path, models_dir):
    lc, _ = cluster
    cache = tmp_path / "shared-cache"
    first, second = tmp_path / "clone1", tmp_path / "clone2"
    for base in (first, second):
        make_zoo(base)
    args = ["--scheduler", lc.scheduler_address, "--remote-cache", str(cache)]
    one = zoomake(first, models_dir, *args)
    assert one.returncode == 0, one.stdout + one.stderr
    assert dask_line(one.stdout) == (ACTIONS, 0, 0)
    assert cache_line(one.stdout) == (ACTIONS, 0)  # the local pass only materialised
    check_report(first / "build")
    assert check_cache(cache) == ACTIONS

    two = zoomake(second, models_dir, *args)
    assert two.returncode == 0, two.stdout + two.stderr
    assert dask_line(two.stdout) == (0, ACTIONS, 0)  # no conversion anywhere
    assert cache_line(two.stdout) == (ACTIONS, 0)
    a, b = tree(first / "build"), tree(second / "build")
    assert sorted(a) == sorted(b)
    assert any(k.endswith("test_data_set_0/output_0.pb") for k in a)
    differ = sorted(k for k in a if a[k] != b[k])
    assert [k for k in differ if not k.startswith("report/")] == []  # artifacts, verify, golden
    # The report: the same for every model and target; only the run's own provenance (when,
    # where) tells the two runs apart.
    ra, rb = (json.loads(t["report/report.json"]) for t in (a, b))
    pa, pb = ra.pop("provenance"), rb.pop("provenance")
    assert sorted(pa) == sorted(pb) and pa["libraries"] == pb["libraries"]
    assert ra == rb

    # The client's build is a local build: a plain local run after it has nothing to do.
    again = zoomake(second, models_dir)
    assert again.returncode == 0, again.stderr
    assert not re.search(
        r"^\.\s+(fetch|convert|optimize|export|reference|measure):", again.stdout, re.M
    )


def test_a_failure_on_a_worker_is_reported_not_redone(cluster, tmp_path, models_dir):
    lc, _ = cluster
    base = tmp_path / "clone"
    recipes = make_zoo(base, {"mtcnn-det1": ["onnx"]})
    recipe = yaml.safe_load((recipes / "mtcnn-det1.yaml").read_text())
    recipe["outputs"] = ["conv4-2", "prob"]  # the model's blob is prob1
    (recipes / "mtcnn-det1.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    r = zoomake(base, models_dir, "--scheduler", lc.scheduler_address, "--remote-cache",
                str(tmp_path / "cache"))  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    # fetch ran; convert and reference (the source has no blob 'prob' either) failed on the
    # worker (--continue); the local pass stops at convert's failure, before reference.
    assert dask_line(r.stdout) == (1, 0, 2)
    assert re.search(r"^remote cache \S+: 1 hits, 0 misses, 1 failed$", r.stdout, re.M), r.stdout
    line = "convert:mtcnn-det1 failed: recipes/mtcnn-det1.yaml#/outputs/1: the model has no"
    assert line in r.stderr  # the worker's line, as a local build names the recipe
    report = json.loads((base / "build" / "report" / "report.json").read_text())
    (target,) = report["models"][0]["targets"]
    assert (target["status"], target["stage"]) == ("failed", "convert")
    assert "prob1" in target["message"]


def _is_build(process: psutil.Process) -> bool:
    """A ``zoomake build`` process; one that ended (or is a zombie) while we look is not."""
    try:
        cmdline = process.cmdline()
    except psutil.Error:
        return False
    return "pipelines" in cmdline and "build" in cmdline


def _unit_children(pids: dict[str, int]) -> dict[str, psutil.Process]:
    """worker address -> the doit build its unit of work runs."""
    found = {}
    for addr, pid in pids.items():
        try:
            for child in psutil.Process(pid).children(recursive=True):
                if _is_build(child):
                    found[addr] = child
        except psutil.NoSuchProcess:
            continue
    return found


def test_a_killed_worker_is_retried_and_nothing_half_made_is_cached(cluster, tmp_path, models_dir):
    lc, client = cluster
    cache = tmp_path / "shared-cache"
    base = tmp_path / "clone"
    make_zoo(base)
    env = offline_zoo_env(base, base / "recipes", models_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "build", "--scheduler", lc.scheduler_address,
         "--remote-cache", str(cache)],
        cwd=base, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            pids = client.run(os.getpid)
            for addr, child in _unit_children(pids).items():
                if time.time() - child.create_time() > 1.0:  # its doit build is under way
                    victim = (addr, pids[addr], child)
                    break
            time.sleep(0.2)
        assert victim is not None, "no unit of work was seen running"
        _, worker_pid, child = victim
        os.kill(worker_pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    child.wait(timeout=10)  # the unit's doit died with its worker (PR_SET_PDEATHSIG)
    assert not child.is_running()
    assert dask_line(out)[2] == 0
    assert len(re.findall(r"^\.  mtcnn-det\d on ", out, re.M)) == len(SMALL_ZOO)
    check_report(base / "build")
    assert check_cache(cache) == ACTIONS  # every record whole; no record of killed work


def test_ctrl_c_stops_a_local_workers_build(tmp_path, models_dir):
    base = tmp_path / "clone"
    make_zoo(base)
    cache = tmp_path / "shared-cache"
    env = offline_zoo_env(base, base / "recipes", models_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "build", "--workers", "2", "--remote-cache",
         str(cache)],
        cwd=base, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        me = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        units = []
        while not units and time.monotonic() < deadline and proc.poll() is None:
            units = [
                c for c in me.children(recursive=True)
                if c.pid != proc.pid and _is_build(c)
            ]  # fmt: skip
            time.sleep(0.2)
        assert units, "no unit of work was seen running"
        descendants = me.children(recursive=True)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        stopped = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert stopped < 45, stopped
    _, alive = psutil.wait_procs(descendants, timeout=15)
    assert alive == [], [p.cmdline() for p in alive]
    if cache.exists():
        check_cache(cache)  # what was stored is whole
    assert not (base / "build" / "report").exists()  # no report claims a stopped build


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch):
    """moto's S3 server on 127.0.0.1 and the environment s3fs needs to reach it."""
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"FSSPEC_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=env["FSSPEC_S3_ENDPOINT_URL"], key="testing",
                           secret="testing")  # fmt: skip
    fs.mkdir("zoomake-test")
    try:
        yield fs, env
    finally:
        server.stop()


def test_s3_cache_hits_misses_and_a_corrupted_object(s3, tmp_path, models_dir):
    fs, env = s3
    zoo = {"mtcnn-det1": ["onnx"]}
    actions = 6  # fetch convert optimize export reference measure
    url = "s3://zoomake-test/cache"
    runs = {}
    for name in ("cold", "corrupt"):
        make_zoo(tmp_path / name, zoo)

    def build(name: str, cache_url: str = url):
        r = zoomake(tmp_path / name, models_dir, env={**env, "ZOOMAKE_REMOTE_CACHE": cache_url})
        assert r.returncode == 0, r.stdout + r.stderr
        runs[name] = tree(tmp_path / name / "build")
        return r

    assert cache_line(build("cold").stdout) == (0, actions)
    assert len(fs.ls("zoomake-test/cache/ac")) == actions

    # Same size, other bytes: only the digest can tell. Detected, warned once, rebuilt.
    onnx = hashlib.sha256(runs["cold"]["mtcnn-det1/convert/model.onnx"]).hexdigest()
    obj = f"zoomake-test/cache/cas/{onnx}"
    data = bytearray(fs.cat_file(obj))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(obj, bytes(data))
    # Outputs with the same bytes share one object (optimize may leave a model as it is).
    users = sum(
        any(o["sha256"] == onnx for o in json.loads(fs.cat_file(rec))["outputs"].values())
        for rec in fs.ls("zoomake-test/cache/ac")
    )
    assert users >= 1
    # A second build from a fresh clone, read through ?readonly (an untrusted job): every
    # action a hit but those of the bad object: detected, warned once, rebuilt, not written.
    r = build("corrupt", url + "?readonly")
    warnings = [ln for ln in r.stderr.splitlines() if "remote cache" in ln]
    assert len(warnings) == 1 and f"cas/{onnx}" in warnings[0] and "corrupted" in warnings[0]
    assert cache_line(r.stdout) == (actions - users, users)
    assert fs.cat_file(obj) == bytes(data)  # a read-only build never writes
    assert len(fs.ls("zoomake-test/cache/ac")) == actions
    # The same artifacts, verify.json and golden data (the rebuilt stages' timings differ,
    # and with them the report's conversion times).
    timing = re.compile(r"^(report/|.*stats\.json$)")
    same = {k: v for k, v in runs["cold"].items() if not timing.match(k)}
    assert {k: v for k, v in runs["corrupt"].items() if not timing.match(k)} == same
    assert "mtcnn-det1/onnx/verify.json" in same
    report = json.loads(runs["corrupt"]["report/report.json"])
    assert [t["status"] for m in report["models"] for t in m["targets"]] == ["passed"]
