"""The package as users and tools see it: version, typing stubs, build facts."""

import ast
import inspect
import pathlib
import re

import dlcore
from dlcore import _core, ops

PKG = pathlib.Path(dlcore.__file__).parent


def test_version_is_single_sourced():
    from importlib.metadata import version

    assert dlcore.__version__ == version("dlcore") == _core.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", dlcore.__version__)


def test_build_info_describes_the_build():
    info = dlcore.build_info
    assert info["version"] == dlcore.__version__
    assert isinstance(info["openmp"], bool)
    assert info["arch"] in {"avx512", "avx2", "baseline", "default"}  # the ISA level
    assert info["eigen"].split()[0] in {"system", "pypi"}


def test_package_is_typed():
    assert (PKG / "py.typed").is_file()


def _stub_functions():
    tree = ast.parse((PKG / "_core.pyi").read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            a = node.args
            out[node.name] = ([x.arg for x in a.args], [x.arg for x in a.kwonlyargs])
    return out


def _module_functions():
    """Parameter names from the signature line pybind11 writes into each docstring."""
    out = {}
    for name, obj in vars(_core).items():
        if name.startswith("_") or not callable(obj) or inspect.isclass(obj):
            continue
        sig = obj.__doc__.splitlines()[0]
        params = re.match(rf"{name}\((.*)\) ->", sig).group(1)
        positional, keyword, star = [], [], False
        for p in (p.strip() for p in params.split(",") if p.strip()):
            if p == "*":
                star = True
                continue
            (keyword if star else positional).append(p.split(":")[0].strip())
        out[name] = (positional, keyword)
    return out


def test_stubs_match_the_extension_module():
    assert _stub_functions() == _module_functions()


def test_ops_exports_every_kernel():
    public = set(_module_functions())
    assert public <= set(ops.__all__)
    for name in ops.__all__:
        assert callable(getattr(ops, name))


# ---------------------------------------------------------------- one list of kernels
# ops.__all__ is the list of what the extension module offers. Everything else that
# names the kernels (the stubs, the profiler's FLOP table, the fuzz table, the
# concurrency cases) is checked against it here, so a kernel added in C++ and missed
# anywhere fails with the file to edit.


def _core_public():
    skip = {"__version__", "build_info"}
    return {n for n in dir(_core) if not n.startswith("_") and n not in skip}


def _stub_names():
    tree = ast.parse((PKG / "_core.pyi").read_text())
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def _kernels():
    """The names of ops.__all__ that are kernels: not a type, not thread control."""
    from dlcore import profiler

    return {
        n
        for n in ops.__all__
        if n not in profiler.NOT_KERNELS and not isinstance(getattr(ops, n), type)
    }


def _missing(names, where):
    return "; ".join(f"{n!r}: {where}" for n in sorted(names))


def test_ops_all_is_the_extension_module():
    listed = set(ops.__all__)
    assert len(listed) == len(ops.__all__), "ops.__all__ lists a name twice"
    assert not _core_public() - listed, _missing(
        _core_public() - listed,
        "dlcore._core defines it; import it in python/dlcore/ops.py and add it to __all__",
    )
    assert not listed - _core_public(), _missing(
        listed - _core_public(), "in ops.__all__ but not defined by dlcore._core"
    )
    for name in ops.__all__:
        assert getattr(ops, name) is getattr(_core, name), f"ops.{name} is not _core.{name}"


def test_stubs_declare_every_name_of_ops():
    stubs, listed = _stub_names(), set(ops.__all__)
    assert not listed - stubs, _missing(
        listed - stubs, "declare it (def or class) in python/dlcore/_core.pyi"
    )
    assert not stubs - listed, _missing(
        stubs - listed, "declared in _core.pyi but not in ops.__all__; remove the stub"
    )


def test_profiler_counts_every_kernel_or_says_it_does_not():
    from dlcore import profiler

    kernels = _kernels()
    counted, uncounted = set(profiler.FLOPS), set(profiler.NOT_COUNTED)
    assert not counted & uncounted, f"both counted and not: {sorted(counted & uncounted)}"
    assert not kernels - counted - uncounted, _missing(
        kernels - counted - uncounted,
        "add a FLOP count to FLOPS in python/dlcore/profiler.py, or the name to NOT_COUNTED "
        "if it is memory-bound",
    )
    stale = (counted | uncounted | profiler.NOT_KERNELS) - set(ops.__all__)
    assert not stale, _missing(stale, "named in profiler.py but not in ops.__all__")


def test_fuzz_table_has_every_name_of_ops():
    import _fuzz_worker

    operations, excused = set(_fuzz_worker.OPERATIONS), set(_fuzz_worker.NOT_FUZZED)
    missing = set(ops.__all__) - operations - excused
    assert not missing, _missing(
        missing,
        "add it to OPERATIONS in tests/_fuzz_worker.py and a case generator and checker in "
        "tests/test_fuzz.py (FAMILIES, CHECKERS)",
    )
    assert not excused - set(ops.__all__), "NOT_FUZZED names something ops does not export"
    for name in set(ops.__all__) & operations:
        op = _fuzz_worker.OPERATIONS[name]
        assert getattr(op, "__wrapped__", op) is getattr(ops, name), f"OPERATIONS[{name!r}]"


def test_concurrency_cases_cover_every_kernel():
    import kernel_cases

    missing = _kernels() - set(kernel_cases.FUNCTIONS)
    assert not missing, _missing(
        missing,
        "add a case to tests/kernel_cases.py (a function in FUNCTIONS and its name in CASES): "
        "test_concurrency.py and test_determinism.py run it",
    )
    cased = {c.split("[")[0] for c in kernel_cases.CASES}
    assert set(kernel_cases.FUNCTIONS) <= cased, "a FUNCTIONS entry has no CASES entry"


def _readme_commands():
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    return re.findall(r"```bash\n(python3 -m venv .*)\n```", readme)


def test_ci_runs_the_readme_test_command():
    commands = _readme_commands()
    test_command = [c for c in commands if "pytest" in c]
    assert len(test_command) == 1
    ci = (pathlib.Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert test_command[0] in ci.splitlines()
