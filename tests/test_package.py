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


def _readme_commands():
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    return re.findall(r"```bash\n(python3 -m venv .*)\n```", readme)


def test_ci_runs_the_readme_test_command():
    commands = _readme_commands()
    test_command = [c for c in commands if "pytest" in c]
    assert len(test_command) == 1
    ci = (pathlib.Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert test_command[0] in ci.splitlines()
