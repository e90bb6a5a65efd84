"""cnnxai.system: the malloc tuning's record, its switch and its idempotence (no timing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cnnxai import system
from tests.helpers import ROOT

GLIBC_LINUX = sys.platform.startswith("linux") and system.glibc_version() is not None

# Prints the tuning's outcome, the manifest record and torch's thread count of a fresh process.
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from cnnxai import system
tuning = system.tune_malloc().as_dict()
import torch
print(json.dumps({"tuning": tuning, "record": system.system_record(), "threads": torch.get_num_threads()}))
"""


def probe(value: str | None) -> dict:
    """The outcome in a child process with CNNXAI_MALLOC_TUNING set to ``value`` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != system.ENV_VAR}
    if value is not None:
        env[system.ENV_VAR] = value
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_record_is_json_able():
    system.tune_malloc()
    record = system.system_record()
    assert json.loads(json.dumps(record)) == record
    assert set(record) == {
        "malloc_tuning", "glibc", "env", "torch_threads", "torch_interop_threads", "auto_batch_sizes"
    }  # fmt: skip
    assert set(record["malloc_tuning"]) == {"applied", "mmap_threshold", "trim_threshold", "reason"}
    assert set(record["env"]) == set(system.THREAD_ENV_VARS)


def test_idempotent():
    first = system.tune_malloc()
    assert system.tune_malloc() is first
    assert system.system_record()["malloc_tuning"] == first.as_dict()


@pytest.mark.parametrize("value", ["0", "off", " OFF "])
def test_env_var_turns_it_off(value):
    outcome = probe(value)
    assert outcome["tuning"]["applied"] is False
    assert system.ENV_VAR in outcome["tuning"]["reason"]
    assert outcome["record"]["malloc_tuning"] == outcome["tuning"]


@pytest.mark.skipif(not GLIBC_LINUX, reason="needs Linux with glibc")
@pytest.mark.parametrize("value", [None, "1", "on"])
def test_applied_on_linux_glibc(value):
    outcome = probe(value)
    assert outcome["tuning"] == {
        "applied": True,
        "mmap_threshold": system.MMAP_THRESHOLD,
        "trim_threshold": system.TRIM_THRESHOLD,
        "reason": None,
    }
    assert outcome["record"]["glibc"] == system.glibc_version()
    assert outcome["record"]["torch_threads"] == outcome["threads"] >= 1


def test_record_before_tuning_says_so():
    outcome = subprocess.run(
        [sys.executable, "-c", "import json, sys; sys.path.insert(0, sys.argv[1]); from cnnxai import system; "
         "print(json.dumps(system.system_record()))", str(ROOT)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    tuning = json.loads(outcome.stdout)["malloc_tuning"]
    assert tuning["applied"] is False and "not called" in tuning["reason"]
    assert json.loads(outcome.stdout)["torch_threads"] is None  # the record does not import torch


def test_never_raises(monkeypatch):
    monkeypatch.setattr(system, "_outcome", None)
    monkeypatch.setattr(system, "_apply", lambda: 1 / 0)
    outcome = system.tune_malloc()
    assert outcome.applied is False and "ZeroDivisionError" in outcome.reason
