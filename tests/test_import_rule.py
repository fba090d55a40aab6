"""The library never imports the app: no module of tfvae outside the app (the command, training
runs, the zoo, multi-worker running) imports one of those, at its top or inside a function."""
import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tfvae")
APP = {"cli", "train", "zoo", "multi_worker"}


def _modules():
    for folder, _, names in os.walk(PACKAGE):
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".").removesuffix(".__init__")


def app_imports(source):
    """The app modules that `source` imports: `import tfvae.X`, `from tfvae import X`,
    `from tfvae.X import ...`, for X in APP."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tfvae" and len(parts) > 1 and parts[1] in APP:
                found.add(parts[1])
    return found


LIBRARY = sorted(m for m in _modules() if m.split(".")[0] not in APP and m != "__init__")


@pytest.mark.parametrize("module", LIBRARY)
def test_a_library_module_imports_no_app_module(module):
    path = os.path.join(PACKAGE, *module.split(".")) + ".py"
    if not os.path.exists(path):
        path = os.path.join(PACKAGE, *module.split("."), "__init__.py")
    assert not app_imports(open(path, encoding="utf-8").read()), f"tfvae.{module} imports the app"


def test_the_rule_sees_every_spelling_of_an_import():
    assert app_imports("import tfvae.zoo") == {"zoo"}
    assert app_imports("def f():\n    from tfvae import multi_worker, data") == {"multi_worker"}
    assert app_imports("from tfvae.train import train") == {"train"}
    assert app_imports("from tfvae import data, files\nimport tfvae.models") == set()
    assert {"evaluation", "plots", "export", "likelihoods", "models.base"} <= set(LIBRARY)
