"""Automation: `nox -s demo`, `nox -s tests`, `nox -s lint`, `nox -s bench`.

Every session installs from `constraints/ci.txt` (the CPU build of torch, exact versions)
into a virtual environment that is reused between runs.
"""

from __future__ import annotations

import os

import nox

nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]

CONSTRAINTS = ("-c", "constraints/ci.txt")
KERAS_BACKENDS = ("tensorflow", "jax", "torch")
KERAS_CI_DTYPES = {"jax": "float32"}  # MSE_ADAPTERS_KERAS_DTYPES; empty: all four
#: The hardening tests with a Keras runner (they honour MSE_ADAPTERS_TEST_BACKENDS).
KERAS_HARDENING = tuple(f"tests/hardening/test_{n}.py" for n in ("catalogue", "traced", "precision"))


def _install(session: nox.Session, extras: str) -> None:
    session.install("-e", f".[{extras}]", *CONSTRAINTS)


@nox.session
def demo(session: nox.Session) -> None:
    """Every installed backend, side by side with the float64 reference."""
    _install(session, "all")
    session.run("python", "-m", "mse_adapters.demo")


@nox.session
def tests(session: nox.Session) -> None:
    """Lint, type-check, the whole suite, the Keras suite under each Keras backend, and the
    examples."""
    _install(session, "dev")
    session.run("ruff", "check", "mse_adapters", "tests", "examples", "benchmarks", "noxfile.py")
    session.run("mypy")
    session.run("pytest", *session.posargs, env={"KERAS_BACKEND": KERAS_BACKENDS[0]})
    # Keras' backend is fixed per process: the Keras tests, the Keras conformance and the
    # hardening catalogue and precision tests (their Keras runners) run again under each other
    # backend (the run above covers keras-tensorflow). On JAX, whose eager mode is the
    # slowest, the conformance grid runs in float32 only (CI time).
    for backend in KERAS_BACKENDS[1:]:
        env = {"KERAS_BACKEND": backend, "MSE_ADAPTERS_TEST_BACKENDS": "keras",
               "MSE_ADAPTERS_KERAS_DTYPES": KERAS_CI_DTYPES.get(backend, "")}
        session.run("pytest", "tests/keras", "tests/conformance", *KERAS_HARDENING, *session.posargs, env=env)
    for name in sorted(os.listdir("examples")):
        if name.endswith(".py"):
            session.run("python", os.path.join("examples", name))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff", "mypy", "numpy", *CONSTRAINTS)
    session.run("ruff", "check", "mse_adapters", "tests", "examples", "benchmarks", "noxfile.py")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the frameworks' built-ins, one thread, interleaved (issue 7):
    writes benchmarks/results/latest.md and latest.json. Arguments after `--` go to
    `python -m benchmarks` (e.g. `-- --backends torch --sizes 1e2,1e7 --readme`)."""
    _install(session, "all")
    session.run("python", "-m", "benchmarks", *session.posargs)
    # whitening (GLS) against the float32 explicit inverse and MultivariateNormal (issue 5)
    os.makedirs("benchmarks/results", exist_ok=True)
    session.run("python", "benchmarks/bench_whitening.py", "--out", "benchmarks/results/whitening.md")
