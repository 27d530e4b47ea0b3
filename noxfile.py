"""Automation: `nox -s demo`, `nox -s tests`, `nox -s lint`, `nox -s docs`, `nox -s bench`.

Every session installs from `constraints/ci.txt` (the CPU build of torch, exact versions)
into a virtual environment that is reused between runs.
"""

from __future__ import annotations

import concurrent.futures
import glob
import logging
import os
import pathlib
import re
import shutil
import subprocess

import nox

nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "virtualenv"  # explicit: nox's own dependency, no uv needed
# nox probes for uv (an optional backend) whatever the backend, and logs its absence as
# "uv binary not found." in every session: not a problem here, so that one line is dropped.
logging.getLogger("nox").addFilter(lambda record: record.getMessage() != "uv binary not found.")

CONSTRAINTS = ("-c", "constraints/ci.txt")
KERAS_BACKENDS = ("tensorflow", "jax", "torch")
KERAS_CI_DTYPES = {"jax": "float32"}  # MSE_ADAPTERS_KERAS_DTYPES; empty: all four
#: pytest-xdist workers (CI has 2 cores); PYTEST_WORKERS=0 runs in one process.
WORKERS = ("-n", os.environ.get("PYTEST_WORKERS", "2"))
#: The hardening tests with a Keras runner (they honour MSE_ADAPTERS_TEST_BACKENDS).
KERAS_HARDENING = tuple(f"tests/hardening/test_{n}.py" for n in ("catalogue", "traced", "precision", "param_types"))
#: What runs again under each other Keras backend.
KERAS_RERUN = ("tests/keras", "tests/oracles/test_keras_losses.py", "tests/conformance", *KERAS_HARDENING,
               *(f"tests/metrics/test_{n}.py" for n in ("streaming", "accuracy", "oracles", "keras_fit", "undefined")))


def _gallery() -> set[str]:
    """The gallery's examples: those a docs page names (``<!-- gallery:NAME -->``); the docs
    build runs them (docs/hooks.py)."""
    pages = pathlib.Path("docs").rglob("*.md")
    return {f"{n}.py" for p in pages for n in re.findall(r"<!-- gallery:(\w+) -->", p.read_text(encoding="utf-8"))}


def _install(session: nox.Session, extras: str) -> None:
    session.log(f"installing mse-adapters[{extras}] with constraints/ci.txt (the first run takes a few "
                "minutes: torch, TensorFlow, JAX; later runs reuse this environment)")
    session.install("-e", f".[{extras}]", *CONSTRAINTS)


@nox.session
def demo(session: nox.Session) -> None:
    """Run the demo: every installed backend side by side with the float64 reference."""
    _install(session, "all")
    session.run("python", "-m", "mse_adapters.demo")


@nox.session
def tests(session: nox.Session) -> None:
    """Run everything CI runs: lint, types, tests, examples, docs and the wheel.

    Lint, type-check, the whole suite, the Keras suite under each Keras backend, the examples,
    the docs site (`mkdocs build --strict`, which runs the gallery's examples) and a wheel
    installed into a clean environment."""
    _install(session, "dev")
    session.run("ruff", "check", "mse_adapters", "tests", "examples", "benchmarks", "docs", "noxfile.py")
    session.run("mypy")
    session.run("pytest", *WORKERS, *session.posargs, env={"KERAS_BACKEND": KERAS_BACKENDS[0]})
    # Keras' backend is fixed per process: the Keras tests, the Keras conformance and the
    # hardening catalogue and precision tests (their Keras runners) run again under each other
    # backend (the run above covers keras-tensorflow). On JAX, whose eager mode is the
    # slowest, the conformance grid runs in float32 only (CI time).
    for backend in KERAS_BACKENDS[1:]:
        env = {"KERAS_BACKEND": backend, "MSE_ADAPTERS_TEST_BACKENDS": "keras",
               "MSE_ADAPTERS_KERAS_DTYPES": KERAS_CI_DTYPES.get(backend, "")}
        session.run("pytest", *WORKERS, *KERAS_RERUN, *session.posargs, env=env)
    wheel = _WheelCheck(session)  # its install runs while the examples and the docs build run
    try:
        _run_examples(session)
        _build_docs(session, os.path.join(session.create_tmp(), "site"))
        wheel.finish()
    finally:
        wheel.stop()  # (a failed step above leaves no install running)


def _run_examples(session: nox.Session) -> None:
    """Run every example but the gallery's (the docs build runs those), two at a time, each
    in a process of its own; what each prints is shown in order, and a failure fails the
    session with its output."""
    gallery = _gallery()
    # _gallery.py: the gallery's helpers
    names = [n for n in sorted(os.listdir("examples"))
             if n.endswith(".py") and not n.startswith("_") and n not in gallery]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outputs = pool.map(lambda n: session.run("python", os.path.join("examples", n), silent=True), names)
        for name, out in zip(names, outputs):
            if out is not None:  # (None under --install-only)
                print(f"-- examples/{name}:\n{out}", end="", flush=True)


#: The longest the wheel's install into a clean environment may take (it takes about a minute).
WHEEL_INSTALL_TIMEOUT_S = 1200
#: What a wheel installed in a clean environment must import (every adapter and its metrics).
WHEEL_IMPORTS = ("mse_adapters", "mse_adapters.numpy", "mse_adapters.numpy.metrics", "mse_adapters.torch",
                 "mse_adapters.torch.metrics", "mse_adapters.jax", "mse_adapters.jax.metrics",
                 "mse_adapters.keras", "mse_adapters.keras.metrics")


class _WheelCheck:
    """Build an sdist and a wheel (`python -m build`), install the wheel with every extra into
    a new, empty virtual environment and import every adapter from it (outside the clone).

    The install (about a minute: it unpacks torch, TensorFlow and JAX) runs in the
    background while the examples and the docs build use the CPU; ``finish`` waits for it
    and shows pip's output only if it failed."""

    def __init__(self, session: nox.Session) -> None:
        self.session, self.proc = session, None
        session.log("building an sdist and a wheel, installing the wheel into a clean virtual environment "
                    "(in the background)")
        tmp = os.path.abspath(session.create_tmp())
        dist, self.venv = os.path.join(tmp, "dist"), os.path.join(tmp, "wheel-venv")
        self.log = os.path.join(tmp, "wheel-install.log")
        for path in (dist, self.venv):
            shutil.rmtree(path, ignore_errors=True)
        # silent: the build's ~220 lines of copying/adding show only if it fails
        if session.run("python", "-m", "build", "--no-isolation", "--outdir", dist, ".", silent=True) is None:
            return  # --install-only: nothing runs, so there is no wheel to install
        (wheel,) = glob.glob(os.path.join(dist, "*.whl"))
        assert glob.glob(os.path.join(dist, "*.tar.gz")), "no sdist was built"
        session.run("python", "-m", "venv", "--without-pip", self.venv)
        pip = [os.path.join(session.bin, "python"), "-m", "pip", "--python", self.python, "install", "-q",
               f"{wheel}[all]", *CONSTRAINTS]
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(pip, stdout=out, stderr=subprocess.STDOUT)

    @property
    def python(self) -> str:
        return os.path.join(self.venv, "bin", "python")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def finish(self) -> None:
        if self.proc is None:
            return
        if self.proc.wait(timeout=WHEEL_INSTALL_TIMEOUT_S) != 0:
            with open(self.log) as f:
                print(f.read())
            self.session.error("installing the wheel into a clean virtual environment failed (pip's output above)")
        check = ("import importlib, os, sys; mods = [importlib.import_module(m) for m in sys.argv[1:]]; "
                 "assert all(os.path.realpath(m.__file__).startswith(os.path.realpath(sys.prefix)) for m in mods), "
                 "[m.__file__ for m in mods]; print('the wheel imports', len(mods), 'modules')")
        self.session.run(self.python, "-I", "-c", check, *WHEEL_IMPORTS, external=True,
                         env={"KERAS_BACKEND": "tensorflow"})


def _build_docs(session: nox.Session, site_dir: str) -> None:
    session.log("building the docs site: runs every gallery example (their figures), then mkdocs")
    session.run("mkdocs", "build", "--strict", "--site-dir", site_dir, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ with `mkdocs build --strict`.

    A broken link or reference fails. The API reference comes from the docstrings, and the
    gallery's examples run to draw their figures (docs/hooks.py). `nox -s docs -- serve`
    serves the site instead."""
    _install(session, "all,docs")
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:], env={"NO_MKDOCS_2_WARNING": "1"})
    else:
        _build_docs(session, "site")


@nox.session
def lint(session: nox.Session) -> None:
    """Lint (ruff) and type-check (mypy) only, in a small environment."""
    session.install("ruff", "mypy", "numpy", *CONSTRAINTS)
    session.run("ruff", "check", "mse_adapters", "tests", "examples", "benchmarks", "docs", "noxfile.py")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark the losses and metrics against the frameworks' built-ins.

    One thread, interleaved, with their targets judged: writes benchmarks/results/latest.md and
    latest.json. Arguments after `--` go to `python -m benchmarks` (e.g.
    `-- --backends torch --sizes 1e2,1e7 --readme`)."""
    _install(session, "all")
    session.run("python", "-m", "benchmarks", *session.posargs)
    # whitening (GLS) against the float32 explicit inverse and MultivariateNormal
    os.makedirs("benchmarks/results", exist_ok=True)
    session.run("python", "benchmarks/bench_whitening.py", "--out", "benchmarks/results/whitening.md")
    # peak memory of a forward + backward per penalty and option, each in a fresh process
    session.run("python", "benchmarks/bench_memory.py", "--out", "benchmarks/results/memory.md")
    # the float64 reference's value_and_grad and hessian_vector_product: peak memory and time
    session.run("python", "benchmarks/bench_reference.py", "--out", "benchmarks/results/reference.md")
    # streaming metrics' update against torchmetrics, and JAX's under jit
    session.run("python", "benchmarks/bench_metrics.py", "--out", "benchmarks/results/metrics.md")
    # the streaming metrics' accuracy against scikit-learn, torchmetrics and keras.metrics
    session.run("python", "benchmarks/metrics_accuracy.py", "--out", "benchmarks/results/metrics_accuracy.md")
    # a DDP step with the exact loss (process_group=) against the naive per-rank mean
    session.run("python", "benchmarks/bench_ddp.py", "--out", "benchmarks/results/ddp.md")
