"""Build the Lambda layers and the function code asset for python3.12 on x86_64, without Docker.

``python -m layers.build [--force]`` (``make layer``) writes:

- ``layers/build/layers/serving/python/``: numpy, onnxruntime (pruned to what its Python binding loads),
  pydantic, Powertools, pysimdjson, boto3 and botocore (its data pruned to the services the functions
  call). Every function mounts it; predict and log-outcome mount nothing else.
- ``layers/build/layers/science/python/``: scikit-learn, scipy, joblib, threadpoolctl, onnx, skl2onnx,
  skops and what only they need, for drift-check, retrain and rollout (on top of the serving layer);
- ``layers/build/function/``: the ``functions`` package without ``functions/local`` (the CLI and the
  local runtime), the one code asset of every function;
- ``layers/build/manifest.json``: versions, sizes, budgets and the hashes that make a rebuild skippable.

Steps per layer: resolve its packages for cp312 manylinux x86_64 under the lock's pins, stopping at what an
earlier layer holds and at dependencies nothing imports; install them; remove tests, sources, headers,
stubs, what the functions never load (unused scipy subpackages, onnxruntime's C API library and tools,
botocore's data of other services); strip the extension modules; compile bytecode with Python 3.12
(unchecked-hash, so it stays valid on Lambda's read-only file system) for the serving layer and the code.
Then verify with Python 3.12 that
every estimator kind trains, converts, checks and saves with both layers, that its graph serves from the
serving layer alone without scikit-learn, and check each function's unzipped size against its budget.
See layers/README.md.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK_FILE = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
FUNCTIONS_SRC = ROOT / "functions"
DATA_DIR = ROOT / "data"
PROBE = Path(__file__).resolve().parent / "probe.py"

BUILD_DIR = ROOT / "layers" / "build"
LAYERS_DIR = BUILD_DIR / "layers"  # one folder per layer asset; a zip of each holds python/
FUNCTION_DIR = BUILD_DIR / "function"  # the function code asset
MANIFEST = BUILD_DIR / "manifest.json"
LOCK = BUILD_DIR / ".lock"

PYTHON_VERSION = "3.12"
RUNTIME = "python3.12"
ARCHITECTURE = "x86_64"
# manylinux2014 alone resolves old releases; the python3.12 runtime (Amazon Linux 2023) has glibc 2.34.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
LAYER_MOUNT = "/opt/python"
TASK_ROOT = "/var/task"

SERVING, SCIENCE = "serving", "science"
# The project's runtime dependencies (pyproject.toml), each in exactly one layer; a layer also gets what
# its packages need and no earlier layer holds. A new dependency fails the build until it is placed here.
LAYER_PACKAGES: dict[str, tuple[str, ...]] = {
    SERVING: ("aws-lambda-powertools", "boto3", "numpy", "onnxruntime", "pydantic", "pysimdjson"),
    SCIENCE: ("joblib", "onnx", "scikit-learn", "scipy", "skl2onnx", "skops"),
}
LAYER_DESCRIPTIONS = {
    SERVING: "numpy, onnxruntime, pydantic, Powertools, pysimdjson, boto3/botocore",
    SCIENCE: "scikit-learn, scipy, joblib, onnx, skl2onnx, skops",
}
FUNCTIONS = ("predict", "log_outcome", "drift_check", "retrain", "rollout")
FUNCTION_LAYERS: dict[str, tuple[str, ...]] = {
    "predict": (SERVING,),
    "log_outcome": (SERVING,),
    "drift_check": (SERVING, SCIENCE),
    "retrain": (SERVING, SCIENCE),
    "rollout": (SERVING, SCIENCE),
}
# Decimal bytes of function code plus layers, unzipped; Lambda's quota is 262,144,000.
BUDGETS: dict[str, int] = {"predict": 150_000_000, "log_outcome": 150_000_000} | dict.fromkeys(
    ("drift_check", "retrain", "rollout"), 250_000_000
)
HARD_LIMIT_BYTES = 262_144_000
# Bytecode compiled by Python 3.12 ships with the serving layer and the function code (predict's cold start
# is what clients wait for). The science layer ships without: its bytecode (about 30 MB) would take retrain
# past its budget, and the loop's functions run on schedules where a slower cold start costs no client.
BYTECODE: dict[str, bool] = {SERVING: True, SCIENCE: False}

# Declared by onnxruntime but never imported by its Python binding (the serving check imports and runs it
# without them); onnx and skops bring protobuf and packaging into the science layer where they are used.
UNUSED_DEPENDENCIES: dict[str, frozenset[str]] = {
    SERVING: frozenset({"flatbuffers", "packaging", "protobuf"}),
    SCIENCE: frozenset({"flatbuffers"}),
}
# Never in any layer (scikit-learn imports pandas when installed); nor, in the serving layer, what serving
# must not carry.
FORBIDDEN = ("pandas", "pyarrow", "polars", "sympy")
FORBIDDEN_IN_SERVING = ("scipy", "scikit-learn", "joblib", "skops", "onnx", "skl2onnx", "threadpoolctl")

TEST_DIRS = frozenset({"tests", "test"})  # not "testing": numpy.testing is imported by scikit-learn
TEST_FILES = frozenset({"conftest.py"})
# Cython, C/C++ and Fortran sources, headers, type stubs, Cython templates (.pyx.tp), static libraries.
SOURCE_SUFFIXES: tuple[str, ...] = (".pyx", ".pxd", ".pxi", ".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp")
SOURCE_SUFFIXES += (".f", ".f90", ".pyi", ".tp", ".a")
SOURCE_NAMES = frozenset({"meson.build"})
# scipy subpackages nothing in the layer imports at module level; see the checks in prune_scipy().
# scipy.io stays: skops lists every scikit-learn estimator at import (all_estimators imports every module of
# scikit-learn), and scikit-learn's data set loaders import scipy.io.
UNUSED_SCIPY = ("cluster", "datasets", "differentiate", "fftpack", "misc", "odr", "signal")
# Lazy imports of a removed subpackage that stay, each inside a feature the functions do not use.
KNOWN_LAZY_REFERENCES = {
    ("sklearn/cluster/_agglomerative.py", "scipy.cluster"),  # AgglomerativeClustering's full tree
}
# onnxruntime's offline tools (quantization, transformer optimisation, model conversion, the ONNX backend
# API, sample data) import onnx, sympy or torch; the binding loads none of them. Nor does it load the C
# API library (capi/libonnxruntime.so.*: `ldd` on the pybind module lists no such dependency).
UNUSED_ONNXRUNTIME = ("backend", "datasets", "quantization", "tools", "transformers")
UNUSED_ONNXRUNTIME_FILES = ("capi/libonnxruntime.so.*", "capi/convert_npz_to_onnx_adapter.py")
# The AWS services the functions' clients call (functions/bootstrap.py), and xray, whose client the X-Ray
# SDK creates at import to poll sampling rules; botocore keeps only their data. The build fails if the
# function code names a client of another service.
AWS_SERVICES = ("cloudwatch", "codedeploy", "events", "lambda", "s3", "xray")
CLIENT_CALL = re.compile(r"""(?:new_client|\.client)\(\s*["']([a-z0-9-]+)["']""")

PIP_NOISE = re.compile(r"is ignored: it is neither a file nor a directory")


class BuildError(Exception):
    """The build cannot produce layers that meet their contract; the message says why and what to do."""


def progress(message: str) -> None:
    """A timestamped progress line."""
    print(f"[layer {time.strftime('%H:%M:%S')}] {message}", flush=True)


def mb(n: int) -> str:
    return f"{n / 1e6:7.1f} MB"


def layer_python(layer: str) -> Path:
    """``python/`` of a layer: what Lambda merges into /opt/python."""
    return LAYERS_DIR / layer / "python"


# -- inputs ------------------------------------------------------------------------------------------------


def read_lock(path: Path = LOCK_FILE) -> dict[NormalizedName, str]:
    """The exact pins of ``requirements.lock``: normalized name -> version."""
    pins: dict[NormalizedName, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise BuildError(f"{path.name}: {raw!r} is not an exact pin (name==version)")
        pins[canonicalize_name(name.strip())] = version.strip()
    return pins


def runtime_requirements() -> list[Requirement]:
    """The project's runtime dependencies (pyproject.toml)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def layer_requirements(layer: str) -> list[Requirement]:
    """The runtime dependencies placed in ``layer`` (LAYER_PACKAGES); fails on a dependency placed nowhere."""
    requirements = runtime_requirements()
    placed = {canonicalize_name(n) for names in LAYER_PACKAGES.values() for n in names}
    unplaced = sorted(r.name for r in requirements if canonicalize_name(r.name) not in placed)
    if unplaced:
        raise BuildError(
            f"pyproject.toml depends on {', '.join(unplaced)}, which no layer holds: add it to LAYER_PACKAGES "
            "in layers/build.py (the serving layer only if predict or log-outcome import it)"
        )
    wanted = {canonicalize_name(n) for n in LAYER_PACKAGES[layer]}
    return [r for r in requirements if canonicalize_name(r.name) in wanted]


def _python_version(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python312() -> Path:
    """The Python 3.12 interpreter that compiles the bytecode and runs the checks.

    Looks at ``$LAYER_PYTHON312``, pyenv's versions (``$PYENV_ROOT`` or ``~/.pyenv``), then ``python3.12``
    on ``PATH``. Raises BuildError saying how to get one when none runs.
    """
    candidates: list[str] = []
    if os.environ.get("LAYER_PYTHON312"):
        candidates.append(os.environ["LAYER_PYTHON312"])
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    versions = sorted((pyenv_root / "versions").glob(f"{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}"), reverse=True)
    candidates += [str(p) for p in versions]
    on_path = shutil.which(f"python{PYTHON_VERSION}")
    if on_path:
        candidates.append(on_path)
    for candidate in candidates:
        version = _python_version(candidate)
        if version and version.startswith(PYTHON_VERSION + "."):
            return Path(candidate)
    raise BuildError(
        f"no Python {PYTHON_VERSION} found (tried: {', '.join(candidates) or 'nothing'}). The layer's bytecode must be "
        f"compiled by the Lambda runtime's Python and its checks run under it: install it (e.g. `pyenv install "
        f"{PYTHON_VERSION}`) or point LAYER_PYTHON312 at a python{PYTHON_VERSION} binary."
    )


def _sha256_files(paths: Iterable[Path], base: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(base)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _tooling_hash() -> str:
    """The build script and the probe: changing how the layer is built rebuilds it."""
    here = Path(__file__).resolve()
    return _sha256_files([here, PROBE], here.parent)


def pins_hash(lock: dict[NormalizedName, str], names: Iterable[str]) -> str:
    """Hash of what decides the layer: the lock's pins of ``names``, the runtime requirements, the target, the tooling.

    ``names`` are the packages of the last build (every layer). A pin of any other package
    cannot change the layer: a new dependency only comes in through a new version of a package already in it,
    or through pyproject.toml, and both are in the hash.
    """
    digest = hashlib.sha256()
    for name in sorted(
        {canonicalize_name(n) for n in names} | {canonicalize_name(r.name) for r in runtime_requirements()}
    ):
        digest.update(f"{name}=={lock.get(name, '<unpinned>')}\n".encode())
    for requirement in sorted(str(r) for r in runtime_requirements()):
        digest.update(f"requires {requirement}\n".encode())
    digest.update(f"{RUNTIME} {ARCHITECTURE} {PLATFORMS} {LAYER_PACKAGES} {UNUSED_DEPENDENCIES}\n".encode())
    digest.update(_tooling_hash().encode())
    return digest.hexdigest()


def function_sources() -> list[Path]:
    """The files of the function code asset: ``functions/`` without ``local/`` and caches."""
    files = []
    for path in FUNCTIONS_SRC.rglob("*"):
        rel = path.relative_to(FUNCTIONS_SRC)
        if not path.is_file() or rel.parts[0] == "local" or "__pycache__" in rel.parts or path.suffix == ".pyc":
            continue
        files.append(path)
    return sorted(files)


def function_hash() -> str:
    """Hash of the function code asset's sources and the tooling that builds it."""
    return hashlib.sha256((_sha256_files(function_sources(), ROOT) + _tooling_hash()).encode()).hexdigest()


# -- pip ---------------------------------------------------------------------------------------------------


def _pip(args: list[str], what: str) -> str:
    command = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    output = "\n".join(
        line for line in (result.stdout + result.stderr).splitlines() if line.strip() and not PIP_NOISE.search(line)
    )
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-25:])
        raise BuildError(f"pip failed while {what} (exit {result.returncode}):\n{tail}")
    return output


def _target_args() -> list[str]:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    return [
        *platforms,
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--abi",
        "cp" + PYTHON_VERSION.replace(".", ""),
        "--disable-pip-version-check",
        "--no-input",
    ]


def _marker_environment(extra: str = "") -> dict[str, str]:
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env.update(
        {
            "python_version": PYTHON_VERSION,
            "python_full_version": PYTHON_VERSION + ".0",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "platform_machine": ARCHITECTURE,
            "os_name": "posix",
            "extra": extra,
        }
    )
    return env


def _applies(requirement: Requirement, extras: Iterable[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate(_marker_environment(extra)) for extra in ("", *extras))


def resolve(requirements: list[Requirement], lock_file: Path, stop_at: frozenset[str]) -> dict[str, str]:
    """Resolve ``requirements`` for the target under the lock's pins; the closure that does not pass ``stop_at``.

    Returns:
        Normalized package name -> version of every package to install.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        _pip(
            [
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--report",
                str(report),
                *_target_args(),
                "-c",
                str(lock_file),
                *[str(r) for r in requirements],
            ],
            "resolving the layer's dependencies",
        )
        resolved = json.loads(report.read_text())["install"]
    metadata = {canonicalize_name(item["metadata"]["name"]): item["metadata"] for item in resolved}
    closure: dict[str, str] = {}
    pending: list[tuple[Requirement, frozenset[str]]] = [(r, frozenset()) for r in requirements]
    while pending:
        requirement, parent_extras = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in stop_at or not _applies(requirement, parent_extras):
            continue
        if name not in metadata:
            raise BuildError(f"pip's resolution lacks {name}, required as {requirement}")
        new = name not in closure
        closure[name] = metadata[name]["version"]
        if new or requirement.extras:
            for dep in metadata[name].get("requires_dist") or []:
                pending.append((Requirement(dep), frozenset(requirement.extras)))
    return dict(sorted(closure.items()))


def install(packages: dict[str, str], target: Path) -> None:
    """Install exactly ``packages`` (no dependency resolution, no host bytecode) into ``target``."""
    _pip(
        [
            "install",
            "--quiet",
            "--no-deps",
            "--no-compile",
            "--target",
            str(target),
            *_target_args(),
            *[f"{name}=={version}" for name, version in packages.items()],
        ],
        f"installing {len(packages)} packages into {target.relative_to(ROOT)}",
    )


def installed_versions(path: Path) -> dict[str, str]:
    """Normalized name -> version of every distribution installed in ``path`` (from its dist-info)."""
    from importlib.metadata import distributions

    found = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions(path=[str(path)])}
    return dict(sorted(found.items()))


# -- pruning -----------------------------------------------------------------------------------------------


def tree_bytes(path: Path) -> int:
    """Unzipped size as Lambda counts it: the sum of the files' sizes."""
    if not path.exists():
        return 0
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _package_dirs(root: Path) -> Iterator[Path]:
    """Top-level folders of installed packages (dist-info and vendored libraries excluded)."""
    for path in sorted(root.iterdir()):
        if path.is_dir() and not path.name.endswith((".dist-info", ".libs")):
            yield path


def prune_tests(root: Path) -> list[str]:
    """Remove test suites: every ``tests``/``test`` folder and ``conftest.py``."""
    removed = []
    for package in _package_dirs(root):
        for path in sorted(package.rglob("*"), key=lambda p: len(p.parts)):
            if not path.exists():
                continue
            if (path.is_dir() and path.name in TEST_DIRS) or (path.is_file() and path.name in TEST_FILES):
                removed.append(str(path.relative_to(root)))
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    return removed


def prune_sources(root: Path) -> int:
    """Remove build inputs: Cython and C/C++/Fortran sources, headers, stubs, templates, static libraries."""
    count = 0
    for package in _package_dirs(root):
        for path in package.rglob("*"):
            if path.is_file() and (path.name.endswith(SOURCE_SUFFIXES) or path.name in SOURCE_NAMES):
                path.unlink()
                count += 1
        for folder in sorted((p for p in package.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()
    return count


def _imported_modules(path: Path, module: str) -> set[str]:
    """Absolute names of the modules ``path`` (module ``module``) imports, or mentions in import statements."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        tree = ast.parse(text)
    except SyntaxError:  # newer syntax than this interpreter parses: fall back to the import lines
        return set(re.findall(r"^\s*(?:from|import)\s+([\w.]+)", text, re.MULTILINE))
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def references_to(root: Path, removed: Iterable[str]) -> set[tuple[str, str]]:
    """(file, module) for each import of a removed module by a file that remains in the layer."""
    removed = tuple(removed)
    found = set()
    for package in _package_dirs(root):
        for path in package.rglob("*.py"):
            rel = path.relative_to(root)
            if rel.parts[0] != "scipy" and b"scipy" not in path.read_bytes():
                continue  # outside scipy only an import naming scipy can reach a subpackage of it
            module = ".".join(rel.with_suffix("").parts)
            for name in _imported_modules(path, module):
                for gone in removed:
                    if name == gone or name.startswith(gone + "."):
                        found.add((rel.as_posix(), gone))
    return found


def prune_scipy(root: Path) -> list[str]:
    """Remove the scipy subpackages scikit-learn and the functions do not import.

    Checked twice: statically here (no remaining file imports one, except the known lazy imports of
    features the functions do not use), and at run time by the probe's import-everything, train-and-predict
    check under Python 3.12 (see verify_layer).
    """
    removed = []
    for name in UNUSED_SCIPY:
        path = root / "scipy" / name
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(f"scipy.{name}")
    unexpected = sorted(references_to(root, removed) - KNOWN_LAZY_REFERENCES)
    if unexpected:
        lines = "\n".join(f"  {file} imports {module}" for file, module in unexpected)
        raise BuildError(
            "a removed scipy subpackage is still imported by the layer; keep it (UNUSED_SCIPY in layers/build.py) "
            f"or confirm the import is unreachable from the functions (KNOWN_LAZY_REFERENCES):\n{lines}"
        )
    return removed


def prune_onnxruntime(root: Path) -> list[str]:
    """Remove what onnxruntime's Python binding never loads: the C API library and the offline tools."""
    package = root / "onnxruntime"
    if not package.is_dir():
        return []
    removed = []
    for name in UNUSED_ONNXRUNTIME:
        if (package / name).is_dir():
            shutil.rmtree(package / name)
            removed.append(f"onnxruntime/{name}")
    for pattern in UNUSED_ONNXRUNTIME_FILES:
        for path in sorted(package.glob(pattern)):
            path.unlink()
            removed.append(str(path.relative_to(root)))
    return removed


def called_services(sources: Iterable[Path]) -> set[str]:
    """The AWS services the function code creates clients for (``new_client("s3")``, ``.client("events")``)."""
    found: set[str] = set()
    for path in sources:
        if path.suffix == ".py":
            found.update(CLIENT_CALL.findall(path.read_text(encoding="utf-8")))
    return found


def prune_aws_data(root: Path) -> int:
    """Keep only AWS_SERVICES' models in botocore's and boto3's data; returns how many services went.

    Raises:
        BuildError: the function code calls a service whose data would be removed.
    """
    missing = sorted(called_services(function_sources()) - set(AWS_SERVICES))
    if missing:
        raise BuildError(f"the functions create clients for {', '.join(missing)}: add them to AWS_SERVICES")
    removed = 0
    for data in (root / "botocore" / "data", root / "boto3" / "data"):
        if not data.is_dir():
            continue
        for service in sorted(p for p in data.iterdir() if p.is_dir()):
            if service.name not in AWS_SERVICES:
                shutil.rmtree(service)
                removed += 1
    for name in AWS_SERVICES:
        if not (root / "botocore" / "data" / name).is_dir():
            raise BuildError(f"botocore has no data for {name!r}: check AWS_SERVICES")
    return removed


def strip_extensions(root: Path) -> int:
    """``strip --strip-unneeded`` the extension modules; never the vendored libraries in ``*.libs/``.

    Stripping the vendored OpenBLAS breaks loading it ("ELF load command address/offset not page-aligned").
    """
    strip = shutil.which("strip")
    if strip is None:
        raise BuildError("`strip` not found: install binutils (apt-get install binutils)")
    files = [
        p
        for p in root.rglob("*.so")
        if p.is_file() and not any(part.endswith(".libs") for part in p.relative_to(root).parts)
    ]
    for start in range(0, len(files), 100):
        batch = files[start : start + 100]
        result = subprocess.run(
            [strip, "--strip-unneeded", *map(str, batch)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise BuildError(f"strip failed: {result.stderr.strip()}")
    return len(files)


def compile_bytecode(python312: Path, root: Path, prefix: str) -> None:
    """Compile every ``.py`` under ``root`` with Python 3.12, hash-based and unchecked.

    An unchecked hash-based .pyc is used without looking at the source's time stamp or contents, so it
    stays valid on Lambda's read-only file system whatever times the zip gave the files. ``prefix`` is
    the path the tracebacks show (where Lambda mounts the folder).
    """
    command = [str(python312), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    command += ["-s", str(root), "-p", prefix, str(root)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(
            f"compiling {root.relative_to(ROOT)} with Python {PYTHON_VERSION} failed:\n{result.stdout[-3000:]}"
        )


def remove_bytecode(root: Path) -> None:
    """Delete every ``__pycache__`` under ``root``."""
    for cache in sorted(root.rglob("__pycache__"), key=lambda p: -len(p.parts)):
        shutil.rmtree(cache)


# -- steps -------------------------------------------------------------------------------------------------


@dataclass
class LayerResult:
    packages: dict[str, str]
    steps: list[dict[str, Any]]


def _measure(steps: list[dict[str, Any]], target: Path, step: str, removed: int | list[str] | None) -> None:
    """Record and print the layer's size after ``step``."""
    size = tree_bytes(target)
    steps.append({"step": step, "bytes": size, "removed": removed})
    if isinstance(removed, list):
        removed = len(removed)
    detail = "" if removed is None else f"  (removed: {removed})"
    progress(f"  {step:<38} {mb(size)}{detail}")


def resolve_layers(lock: dict[NormalizedName, str]) -> dict[str, dict[str, str]]:
    """Each layer's packages: its requirements' closure, minus what an earlier layer holds or nothing imports."""
    held: set[str] = set()
    resolved: dict[str, dict[str, str]] = {}
    for layer in LAYER_PACKAGES:
        requirements = layer_requirements(layer)
        progress(f"resolving the {layer} layer: {', '.join(str(r) for r in requirements)}")
        packages = resolve(requirements, LOCK_FILE, frozenset(held | UNUSED_DEPENDENCIES[layer]))
        progress(f"  {len(packages)} packages: " + ", ".join(f"{n}=={v}" for n, v in packages.items()))
        unpinned = sorted(n for n in packages if n not in lock)
        if unpinned:
            progress(f"  warning: not pinned in requirements.lock (resolved afresh each build): {', '.join(unpinned)}")
        resolved[layer] = packages
        held |= set(packages)
    return resolved


def build_layer(layer: str, packages: dict[str, str], python312: Path, lock: dict[NormalizedName, str]) -> LayerResult:
    """Install, prune, strip and compile one layer into ``layer_python(layer)`` (replacing it)."""
    staging = BUILD_DIR / ".staging" / layer
    shutil.rmtree(staging, ignore_errors=True)
    target = staging / "python"
    target.mkdir(parents=True)
    progress(f"{layer} layer: installing {len(packages)} packages (pip --only-binary, --no-deps, --no-compile)")
    install(packages, target)
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: nothing on Lambda runs them
    steps: list[dict[str, Any]] = []
    _measure(steps, target, "installed (no bytecode)", None)
    _measure(steps, target, "without test suites", prune_tests(target))
    _measure(steps, target, "without sources, headers, stubs", prune_sources(target))
    if (target / "scipy").is_dir():
        _measure(steps, target, "without unused scipy subpackages", prune_scipy(target))
    if (target / "onnxruntime").is_dir():
        _measure(steps, target, "without onnxruntime's C API and tools", prune_onnxruntime(target))
    if (target / "botocore").is_dir():
        _measure(steps, target, f"botocore data: {', '.join(AWS_SERVICES)}", prune_aws_data(target))
    _measure(steps, target, "extension modules stripped", strip_extensions(target))
    if BYTECODE[layer]:
        compile_bytecode(python312, target, LAYER_MOUNT)
        _measure(steps, target, "with cp312 bytecode", None)

    versions = installed_versions(target)
    check_versions(versions, lock, LAYER_PACKAGES[layer])
    forbidden = [*FORBIDDEN, *(FORBIDDEN_IN_SERVING if layer == SERVING else ())]
    present = [name for name in forbidden if name in versions or (target / name.replace("-", "_")).exists()]
    if present:
        raise BuildError(f"the {layer} layer must not contain {', '.join(present)}")

    destination = LAYERS_DIR / layer
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    target.rename(destination / "python")
    shutil.rmtree(staging, ignore_errors=True)
    return LayerResult(packages=versions, steps=steps)


def check_versions(versions: dict[str, str], lock: dict[NormalizedName, str], required: Iterable[str]) -> None:
    """Fail unless every package the lock pins has the locked version, and every ``required`` one is present."""
    missing = [name for name in required if canonicalize_name(name) not in versions]
    wrong = [
        f"{name} {version} (requirements.lock: {lock[canonicalize_name(name)]})"
        for name, version in versions.items()
        if canonicalize_name(name) in lock and lock[canonicalize_name(name)] != version
    ]
    if missing or wrong:
        raise BuildError(
            "the layer's versions differ from requirements.lock: "
            + "; ".join([*(f"{m} missing" for m in missing), *wrong])
            + " (a pipeline loads only under the scikit-learn, numpy and scipy that saved it)"
        )


def check_disjoint(results: dict[str, LayerResult]) -> None:
    """No top-level name in two layers: Lambda merges them into /opt/python, where one would hide the other."""
    owners: dict[str, str] = {}
    clashes = []
    for layer in results:
        for path in layer_python(layer).iterdir():
            if path.name in owners and path.name != "__pycache__":
                clashes.append(f"{path.name} ({owners[path.name]} and {layer})")
            owners[path.name] = layer
    if clashes:
        raise BuildError(f"the layers overlap: {', '.join(clashes)}")


def build_function(python312: Path) -> None:
    """Copy the deployed ``functions`` package into FUNCTION_DIR and compile it with Python 3.12."""
    shutil.rmtree(FUNCTION_DIR, ignore_errors=True)
    for source in function_sources():
        dest = FUNCTION_DIR / source.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
    compile_bytecode(python312, FUNCTION_DIR, TASK_ROOT)
    progress(f"function code: {len(function_sources())} files of functions/ (without functions/local)")


def function_roots(function: str) -> list[Path]:
    """``sys.path`` of ``function`` on Lambda, in order: its code, then its layers (merged at /opt/python)."""
    return [FUNCTION_DIR, *(layer_python(layer) for layer in FUNCTION_LAYERS[function])]


def probe_env(extra: dict[str, str] | None = None, roots: Iterable[Path] | None = None) -> dict[str, str]:
    """A clean environment for the probe: PYTHONPATH = function code, then layers; no bytecode writes."""
    roots = list(roots) if roots is not None else function_roots("retrain")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "HOME": tempfile.gettempdir(),
        "PYTHONPATH": os.pathsep.join(str(r) for r in roots),
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
    }
    env.update(extra or {})
    return env


def probe_command(python312: Path, mode: str, *arguments: str) -> list[str]:
    """The probe's command line: no script folder, no current folder, no site-packages on ``sys.path``."""
    return [str(python312), "-P", "-S", "-s", str(PROBE), mode, *arguments]


def run_probe(
    python312: Path, mode: str, arguments: list[str], env: dict[str, str], timeout: float = 600
) -> dict[str, Any]:
    """Run the probe; its last stdout line is its JSON result. Raises BuildError with its stderr on failure."""
    result = subprocess.run(
        probe_command(python312, mode, *arguments),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise BuildError(
            f"the Python {PYTHON_VERSION} probe ({mode}) failed (exit {result.returncode}):\n{result.stderr[-4000:]}"
        )
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def _judge_imports(result: dict[str, Any], shipped: set[str]) -> tuple[list[str], list[str]]:
    """(optional, failed) among the probe's failed imports."""
    optional, failed = [], []
    for name, failure in sorted(result["failed_imports"].items()):
        missing = failure["missing"]
        if missing and missing.split(".")[0] not in shipped:
            optional.append(f"{name} (needs {missing.split('.')[0]})")  # an optional dependency never installed
        else:
            failed.append(f"  import {name}: {failure['error']}")
    return optional, failed


def _shipped(roots: Iterable[Path]) -> set[str]:
    return {p.name for root in roots for p in root.iterdir()} | {p.stem for root in roots for p in root.glob("*.py")}


def verify_layers(python312: Path) -> dict[str, Any]:
    """Under Python 3.12 with only the build on sys.path: train/convert/save every estimator kind with both
    layers, then serve each graph from the serving layer alone, with nothing of scikit-learn importable."""
    aws = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    env = probe_env(aws, roots=function_roots("retrain"))
    before = _pyc_count()
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as graphs:
        progress(f"verifying under Python {PYTHON_VERSION}: imports, train/convert/check/save per estimator kind")
        science = run_probe(python312, "verify", [str(DATA_DIR), graphs], env)
        optional, failed = _judge_imports(science, _shipped(function_roots("retrain")))
        problems += failed + [f"  imported from outside the build: {line}" for line in science["imports_outside"]]
        progress("verifying the serving layer alone: predict and log-outcome import, every graph serves")
        serving = run_probe(python312, "serve-check", [graphs], probe_env(aws, roots=function_roots("predict")))
    s_optional, s_failed = _judge_imports(serving, _shipped(function_roots("predict")))
    problems += [f"  (serving) {line.strip()}" for line in s_failed]
    problems += [f"  (serving) imported from outside the build: {line}" for line in serving["imports_outside"]]
    problems += [f"  (serving) loaded {name}, which predict must not" for name in serving["forbidden_loaded"]]
    problems += [f"  (serving) {key}: {why}" for key, why in serving["graph_failures"].items()]
    if set(serving["graphs"]) != set(science["estimators"]):
        problems.append(f"  (serving) served {sorted(serving['graphs'])}, trained {sorted(science['estimators'])}")
    if _pyc_count() != before:
        problems.append("  bytecode was written during the check (the shipped .pyc did not cover every module)")
    if problems:
        raise BuildError(f"the layers failed their check under Python {PYTHON_VERSION}:\n" + "\n".join(problems))
    progress(
        f"verified: {science['modules']} modules imported, {len(science['estimators'])} estimators trained, "
        f"converted, checked and saved; {len(serving['graphs'])} graphs served by the serving layer alone "
        f"({serving['modules']} modules)"
    )
    progress(f"  not importable without optional packages never installed: {', '.join(optional) or 'none'}")
    if s_optional:
        progress(f"  serving layer, optional packages never installed: {', '.join(s_optional)}")
    return {"science": science["estimators"], "serving": serving["graphs"]}


def _pyc_count() -> int:
    roots = (*(layer_python(n) for n in LAYER_PACKAGES), FUNCTION_DIR)
    return sum(1 for root in roots for _ in root.rglob("*.pyc"))


# -- sizes, manifest ---------------------------------------------------------------------------------------


def sizes() -> dict[str, Any]:
    """Unzipped bytes of each layer, the function code, and each function's total."""
    layers = {name: tree_bytes(LAYERS_DIR / name) for name in LAYER_PACKAGES}
    function = tree_bytes(FUNCTION_DIR)
    return {
        "layers": layers,
        "function": function,
        "per_function_total": {
            name: function + sum(layers[layer] for layer in FUNCTION_LAYERS[name]) for name in FUNCTIONS
        },
    }


def check_budget(measured: dict[str, Any]) -> None:
    """Print each function's unzipped total against its budget; raise BuildError past any budget."""
    print(f"unzipped sizes, decimal bytes (Lambda's limit {HARD_LIMIT_BYTES:,}):")
    for name, size in measured["layers"].items():
        print(f"  {name + ' layer':<22}  {mb(size)}")
    print(f"  {'function code':<22}  {mb(measured['function'])}")
    over = []
    for name, total in measured["per_function_total"].items():
        budget = BUDGETS[name]
        verdict = "ok" if total <= budget else "OVER BUDGET"
        layers = " + ".join(FUNCTION_LAYERS[name])
        print(f"  {name:<22}  {mb(total)}  ({total:,} of {budget:,}; code + {layers})  {verdict}")
        if total > budget:
            over.append(f"{name} {total:,} bytes (budget {budget:,})")
    if over:
        raise BuildError(
            f"over budget (code + layers, unzipped): {', '.join(over)}. Prune more in layers/build.py or move a "
            "package out of the function's layers."
        )


def read_manifest() -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return None
    return manifest


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    """One build at a time (tests and make may start it concurrently)."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _layers_up_to_date(manifest: dict[str, Any] | None, key: str) -> bool:
    if manifest is None or manifest.get("pins_hash") != key or set(manifest.get("layers", {})) != set(LAYER_PACKAGES):
        return False
    return all(manifest["sizes_bytes"]["layers"].get(n) == tree_bytes(LAYERS_DIR / n) for n in LAYER_PACKAGES)


def _function_up_to_date(manifest: dict[str, Any] | None, key: str) -> bool:
    if manifest is None or manifest.get("function_hash") != key or not FUNCTION_DIR.is_dir():
        return False
    return bool(manifest["sizes_bytes"]["function"] == tree_bytes(FUNCTION_DIR))


def build(force: bool = False) -> dict[str, Any]:
    """Build what changed (everything with ``force``), check it, and return the manifest.

    Raises:
        BuildError: a step failed, the versions differ from the lock, or a function is over its budget.
    """
    started = time.perf_counter()
    with _exclusive():
        lock = read_lock()
        old = None if force else read_manifest()
        previous = [name for layer in (old or {}).get("layers", {}).values() for name in layer["packages"]]
        layer_key = pins_hash(lock, previous)
        code_key = function_hash()
        layers_ok = _layers_up_to_date(old, layer_key)
        function_ok = _function_up_to_date(old, code_key)
        if old is not None and layers_ok and function_ok:
            progress(
                "up to date: the lock's pins, the function code and the build script are unchanged (--force rebuilds)"
            )
            check_budget(old["sizes_bytes"])
            return old

        python312 = find_python312()
        progress(f"target: Lambda {RUNTIME} on {ARCHITECTURE}; bytecode by {python312}")
        MANIFEST.unlink(missing_ok=True)  # a build that stops half-way is never taken for a finished one
        if layers_ok and old is not None:
            progress("layers up to date; rebuilding the function code only")
            results = {
                name: LayerResult(info["packages"], info["size_steps_bytes"]) for name, info in old["layers"].items()
            }
        else:
            shutil.rmtree(LAYERS_DIR, ignore_errors=True)
            resolved = resolve_layers(lock)
            results = {name: build_layer(name, packages, python312, lock) for name, packages in resolved.items()}
            check_disjoint(results)
            layer_key = pins_hash(lock, [n for r in results.values() for n in r.packages])
        build_function(python312)
        verified = verify_layers(python312)

        measured = sizes()
        manifest = {
            "python": PYTHON_VERSION,
            "architecture": ARCHITECTURE,
            "runtime": RUNTIME,
            "layers": {
                name: {
                    "dir": str((LAYERS_DIR / name).relative_to(ROOT)),
                    "description": LAYER_DESCRIPTIONS[name],
                    "packages": result.packages,
                    "size_steps_bytes": result.steps,
                    "bytecode": BYTECODE[name],
                }
                for name, result in results.items()
            },
            "function_dir": str(FUNCTION_DIR.relative_to(ROOT)),
            "function_layers": {name: list(FUNCTION_LAYERS[name]) for name in FUNCTIONS},
            "sizes_bytes": measured,
            "budgets_bytes": BUDGETS,
            "hard_limit_bytes": HARD_LIMIT_BYTES,
            "pins_hash": layer_key,
            "function_hash": code_key,
            "verified": verified,
            "bytecode": {"python": _python_version(str(python312)), "invalidation_mode": "unchecked-hash"},
            "build_seconds": round(time.perf_counter() - started, 1),
        }
        MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
        check_budget(measured)
        progress(f"done in {manifest['build_seconds']:.0f} s; wrote {MANIFEST.relative_to(ROOT)}")
        return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m layers.build", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when nothing changed")
    args = parser.parse_args(argv)
    try:
        build(force=args.force)
    except BuildError as exc:
        print(f"layer build failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
