"""scripts/lambda-instance: how `cargo lambda watch` starts an instance of a function.

cargo-lambda runs `$CARGO run ... --bin <function>`; a function the harness has just built
starts as that binary, anything else goes to the real cargo."""

from __future__ import annotations

import os
import pathlib
import stat
import subprocess

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "lambda-instance"


def executable(path: pathlib.Path, says: str) -> None:
    path.write_text(f'#!/usr/bin/env bash\necho "{says} $*"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def world(tmp_path):
    built = tmp_path / "debug"
    built.mkdir()
    executable(built / "traffic-shifter", "binary traffic-shifter")
    cargo = tmp_path / "cargo"
    executable(cargo, "cargo")
    env = dict(os.environ, LIFEBOAT_CARGO=str(cargo), LIFEBOAT_PREBUILT="health-probe,traffic-shifter",
               LIFEBOAT_PREBUILT_DIR=str(built))
    return env


def run(env, *args) -> str:
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_a_prebuilt_function_starts_as_its_binary(world):
    assert run(world, "run", "--quiet", "--locked", "--bin", "traffic-shifter") == "binary traffic-shifter"
    assert run(world, "run", "--bin=traffic-shifter") == "binary traffic-shifter"


def test_a_function_not_built_or_missing_goes_to_cargo(world):
    # Not named as built: cargo builds and runs it.
    assert run(world, "run", "--bin", "deploy-wave") == "cargo run --bin deploy-wave"
    # Named, but no binary there.
    assert run(world, "run", "--bin", "health-probe") == "cargo run --bin health-probe"
    # Named nowhere.
    env = dict(world, LIFEBOAT_PREBUILT="")
    assert run(env, "run", "--bin", "traffic-shifter") == "cargo run --bin traffic-shifter"


def test_other_cargo_subcommands_go_to_cargo(world):
    assert run(world, "build", "--bin", "traffic-shifter") == "cargo build --bin traffic-shifter"
    assert run(world, "metadata", "--format-version", "1") == "cargo metadata --format-version 1"
