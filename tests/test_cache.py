"""faceedit_nb.cache: stable config hashes and train-once model caching."""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from faceedit_nb import cache
from faceedit_nb.cache import CacheWarning, CacheWriteError, config_hash, entry_dir, load_or_train


@dataclasses.dataclass
class Cfg:
    size: int = 4
    lr: float = 1e-3
    name: str = "tiny"
    betas: tuple = (0.5, 0.999)


class Counter:
    """A train_fn that counts its calls and returns a tiny trained linear layer."""

    def __init__(self):
        self.calls = 0

    def __call__(self, cfg):
        self.calls += 1
        torch.manual_seed(0)
        model = torch.nn.Linear(cfg.size, 2)
        with torch.no_grad():
            model.weight.fill_(float(self.calls))
        return model


def build(cfg):
    return torch.nn.Linear(cfg.size, 2)


# --- config_hash -------------------------------------------------------------------------------------------
def test_hash_is_stable_and_order_independent():
    a = {"lr": 1e-3, "size": 64, "nested": {"b": 1, "a": [1, 2]}}
    b = {"nested": {"a": [1, 2], "b": 1}, "size": 64, "lr": 0.001}
    assert config_hash(a) == config_hash(b)
    assert len(config_hash(a)) == cache.HASH_LENGTH
    # a dataclass hashes like the equivalent dict; tuples like lists
    assert config_hash(Cfg()) == config_hash({"size": 4, "lr": 1e-3, "name": "tiny", "betas": [0.5, 0.999]})


def test_hash_is_the_same_in_another_process():
    code = ("from faceedit_nb.cache import config_hash; "
            "print(config_hash({'z': [1, 2.5, None, True], 'a': {'y': 'x'}}))")
    env = dict(os.environ, PYTHONHASHSEED="123")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert other.stdout.strip() == config_hash({"a": {"y": "x"}, "z": [1, 2.5, None, True]})


def test_hash_distinguishes_configs():
    assert config_hash(Cfg()) != config_hash(Cfg(size=5))
    assert config_hash({"x": 1}) != config_hash({"x": "1"})
    assert config_hash({"x": 1}) != config_hash({"x": True})


def test_unhashable_values_are_refused():
    with pytest.raises(TypeError, match="cannot hash"):
        config_hash({"f": object()})
    with pytest.raises(ValueError):
        config_hash({"x": float("nan")})
    with pytest.raises(TypeError, match="keys must be strings"):
        config_hash({1: 2})


# --- load_or_train ---------------------------------------------------------------------------------------
def test_second_call_loads_instead_of_training(tmp_path):
    train = Counter()
    m1 = load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path, verbose=False)
    m2 = load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path, verbose=False)
    assert train.calls == 1
    assert m2 is not m1 and isinstance(m2, torch.nn.Linear)
    assert torch.equal(m1.weight, m2.weight) and torch.equal(m1.bias, m2.bias)
    entry = entry_dir("lin", Cfg(), tmp_path)
    assert entry.name == f"lin-{config_hash(Cfg())}"
    assert json.loads((entry / "config.json").read_text()) == json.loads(cache.canonical_json(Cfg()))
    assert json.loads((entry / "meta.json").read_text())["kind"] == "module"
    left = [p.name for p in entry.iterdir() if p.name.startswith(".") and p.name != ".training.lock"]
    assert not left, f"temporary files left behind: {left}"


def test_different_config_trains_a_new_entry(tmp_path):
    train = Counter()
    load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path, verbose=False)
    load_or_train("lin", Cfg(lr=2e-3), train, build_fn=build, cache_dir=tmp_path, verbose=False)
    load_or_train("other", Cfg(), train, build_fn=build, cache_dir=tmp_path, verbose=False)
    assert train.calls == 3
    assert len(list(tmp_path.iterdir())) == 3


def test_dict_results_round_trip(tmp_path):
    calls = []

    def train(cfg):
        calls.append(cfg)
        return {"G": {"w": torch.ones(2, 2)}, "history": [1.0, 0.5], "note": "ok", "steps": 3}

    first = load_or_train("pair", {"steps": 3}, train, cache_dir=tmp_path, verbose=False)
    again = load_or_train("pair", {"steps": 3}, train, cache_dir=tmp_path, verbose=False)
    assert len(calls) == 1
    assert torch.equal(again["G"]["w"], first["G"]["w"]) and again["history"] == [1.0, 0.5]
    assert again["note"] == "ok" and again["steps"] == 3


def test_env_var_sets_the_cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path / "root"))
    assert cache.models_dir() == (tmp_path / "root" / "models").resolve()
    load_or_train("lin", Cfg(), Counter(), build_fn=build, verbose=False)
    assert (tmp_path / "root" / "models" / f"lin-{config_hash(Cfg())}" / "weights.pt").is_file()


def test_default_root_is_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEEDIT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == (tmp_path / "xdg" / "faceedit-nb").resolve()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_root() == (tmp_path / "home" / ".cache" / "faceedit-nb").resolve()


def test_corrupt_entry_warns_and_retrains(tmp_path):
    train = Counter()
    load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path, verbose=False)
    weights = entry_dir("lin", Cfg(), tmp_path) / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:40])  # truncated file
    with pytest.warns(CacheWarning, match="unusable"):
        model = load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path, verbose=False)
    assert train.calls == 2 and isinstance(model, torch.nn.Linear)
    # the entry was rewritten and is good again
    load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path, verbose=False)
    assert train.calls == 2


def test_pickled_code_is_never_loaded(tmp_path):
    """weights_only=True: an entry holding an arbitrary pickled object is refused (and retrained)."""
    train = Counter()
    load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path, verbose=False)
    weights = entry_dir("lin", Cfg(), tmp_path) / "weights.pt"
    torch.save(Counter(), weights)  # a pickled instance of a test class
    with pytest.warns(CacheWarning):
        load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path, verbose=False)
    assert train.calls == 2


def test_module_result_needs_build_fn(tmp_path):
    with pytest.raises(TypeError, match="build_fn"):
        load_or_train("lin", Cfg(), Counter(), cache_dir=tmp_path, verbose=False)
    assert not (entry_dir("lin", Cfg(), tmp_path) / "weights.pt").exists()


def test_retrain_forces_training(tmp_path):
    train = Counter()
    load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path, verbose=False)
    m = load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path, retrain=True, verbose=False)
    assert train.calls == 2 and float(m.weight.detach()[0, 0]) == 2.0
    m = load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path, verbose=False)
    assert float(m.weight.detach()[0, 0]) == 2.0


def test_failed_training_leaves_no_entry(tmp_path):
    def boom(cfg):
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        load_or_train("lin", Cfg(), boom, build_fn=build, cache_dir=tmp_path, verbose=False)
    assert not cache.is_cached("lin", Cfg(), tmp_path)


def test_bad_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="cache name"):
        load_or_train("../escape", Cfg(), Counter(), build_fn=build, cache_dir=tmp_path)


LOCK_SCRIPT = """
import sys, time
from pathlib import Path
from faceedit_nb.cache import load_or_train

cache, log, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

def train(cfg):
    with open(log, "a") as fh:   # one line per training actually run
        fh.write("trained\\n")
    deadline = time.time() + 60  # hold the lock until the other process is about to ask for the model
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    return {"w": cfg["w"]}

if sys.argv[4] == "second":
    while not log.exists():      # start asking once the first process is training
        time.sleep(0.05)
    ready.touch()
print(load_or_train("locked", {"w": 3}, train, cache_dir=cache, verbose=True)["w"])
"""


def test_two_processes_needing_the_same_model_train_it_once(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(LOCK_SCRIPT)
    log, ready = tmp_path / "trainings.log", tmp_path / "second-is-asking"
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), str(log), str(ready), role],
                              stdout=subprocess.PIPE, text=True) for role in ("first", "second")]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert log.read_text().count("trained") == 1
    assert all(o.strip().splitlines()[-1] == "3" for o in outs)
    assert "waiting for another process" in outs[1] and "[cache] loaded locked" in outs[1]


def test_fields_without_effect_stay_out_of_the_key():
    # the learning-curve settings change nothing while no curve is measured: a model cached before they
    # existed keeps its key; once a curve is measured they are part of it
    from faceedit_nb.papers.stargan import StarGANConfig
    off = StarGANConfig.paper(curve_every=0)
    assert "curve_faces" not in json.loads(cache.canonical_json(off))
    assert config_hash(off) == config_hash(off.replace(curve_faces=50, curve_oracles="cpu"))
    on = off.replace(curve_every=100)
    assert json.loads(cache.canonical_json(on))["curve_faces"] == 200
    assert config_hash(on) != config_hash(off) != config_hash(on.replace(curve_faces=50))


# --- nothing trained is thrown away ----------------------------------------------------------------------
@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)`` makes ``folder`` refuse new files: chmod for a regular user; root writes through
    any mode, so as root the file creation the cache does (``tempfile.mkstemp``) is refused in that folder
    with the error the kernel gives a regular user."""
    folders = []
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() in folders:
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    def make(folder: Path) -> None:
        folder.chmod(0o555)
        folders.append(folder.resolve())
        if os.geteuid() == 0:
            monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    yield make
    for folder in folders:
        folder.chmod(0o755)


def test_an_unwritable_cache_fails_before_training(tmp_path, read_only):
    train = Counter()
    # the folder of the entry exists (an earlier run was killed while training) but cannot be written
    entry = entry_dir("lin", Cfg(), tmp_path / "models")
    entry.mkdir(parents=True)
    read_only(entry)
    with pytest.raises(CacheWriteError, match="nothing was trained") as e:
        load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path / "models", verbose=False)
    assert train.calls == 0
    assert f"the cache folder {entry} cannot be written (it is not writable: PermissionError" in str(e.value)
    assert f"Fix: make {entry} writable, or pass load_or_train a writable cache_dir=" in str(e.value)
    # a cache folder under a regular file: refused as well (for root too)
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(CacheWriteError, match=f"{tmp_path / 'a-file'} is a file, not a folder"):
        load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=tmp_path / "a-file" / "models", verbose=False)
    assert train.calls == 0


def test_faceedit_cache_naming_a_file_is_refused_at_once(tmp_path, monkeypatch):
    target = tmp_path / "cache.txt"
    target.write_text("")
    monkeypatch.setenv("FACEEDIT_CACHE", str(target))
    train = Counter()
    with pytest.raises(CacheWriteError) as e:
        load_or_train("lin", Cfg(), train, build_fn=build, verbose=False)
    assert train.calls == 0
    assert str(e.value).startswith(f"FACEEDIT_CACHE={target} is a file, not a folder")
    assert "Fix: point FACEEDIT_CACHE at a folder" in str(e.value) and "or unset it" in str(e.value)
    monkeypatch.setenv("FACEEDIT_CACHE", str(target / "sub"))
    with pytest.raises(CacheWriteError, match=f"lies under {target}, which is a file"):
        cache.cache_root()


def test_weights_that_cannot_be_stored_after_training_are_saved_elsewhere(tmp_path, monkeypatch, read_only):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the rescued entry goes
    (tmp_path / "tmp").mkdir()
    models, entry = tmp_path / "models", entry_dir("lin", Cfg(), tmp_path / "models")
    train = Counter()

    def train_then_lose_the_cache(cfg):  # the cache becomes read-only while the model trains
        model = train(cfg)
        read_only(entry)
        return model

    with pytest.raises(CacheWriteError) as e:
        load_or_train("lin", Cfg(), train_then_lose_the_cache, build_fn=build, cache_dir=models, verbose=False)
    saved = e.value.saved_to
    assert train.calls == 1 and saved is not None and saved.parent.parent == tmp_path / "tmp"
    assert "trained lin in " in str(e.value) and f"could not store it in the cache folder {entry}" in str(e.value)
    assert f"The trained weights are saved in {saved} (weights.pt, config.json, meta.json)" in str(e.value)
    assert f"cp {saved}/* {entry}/" in str(e.value) and f"Fix: make {entry} writable" in str(e.value)
    state = torch.load(saved / "weights.pt", weights_only=True)
    assert float(state["weight"][0, 0]) == 1.0  # the weights of that training
    assert not cache.is_cached("lin", Cfg(), models)
    # the message's fix works: once the folder is writable, the copied files load without training
    entry.chmod(0o755)
    monkeypatch.undo()
    for f in saved.iterdir():
        (entry / f.name).write_bytes(f.read_bytes())
    model = load_or_train("lin", Cfg(), train, build_fn=build, cache_dir=models, verbose=False)
    assert train.calls == 1 and float(model.weight.detach()[0, 0]) == 1.0
