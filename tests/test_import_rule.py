"""The library never imports the app: no module of tfvae outside `tfvae/app/` (the command,
training runs, the zoo, multi-worker running) imports one inside it, at its top or inside a
function, by any spelling (`tfvae.app.X`, `from tfvae.app import X`, `from tfvae import app`, or
the package's lazy names `tfvae.zoo`, `tfvae.train`, ... that load the app)."""
import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tfvae")
APP_FOLDER = "app"
APP = {"cli", "train", "zoo", "multi_worker", "config", "archives"}  # tfvae.<name> loads tfvae.app.<name>


def _modules():
    for folder, _, names in os.walk(PACKAGE):
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".").removesuffix(".__init__")


def app_imports(source):
    """The app modules that `source` imports: `import tfvae.app.X`, `from tfvae.app import X`,
    `from tfvae import app`, and the lazy spellings `tfvae.X`, `from tfvae import X` for X in
    APP."""
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
            if parts[0] != "tfvae" or len(parts) < 2:
                continue
            if parts[1] == APP_FOLDER:
                found.add(parts[2] if len(parts) > 2 else APP_FOLDER)
            elif parts[1] in APP:
                found.add(parts[1])
    return found


LIBRARY = sorted(m for m in _modules() if m.split(".")[0] != APP_FOLDER and m != "__init__")


@pytest.mark.parametrize("module", LIBRARY)
def test_a_library_module_imports_no_app_module(module):
    path = os.path.join(PACKAGE, *module.split(".")) + ".py"
    if not os.path.exists(path):
        path = os.path.join(PACKAGE, *module.split("."), "__init__.py")
    assert not app_imports(open(path, encoding="utf-8").read()), f"tfvae.{module} imports the app"


def test_the_rule_sees_every_spelling_of_an_import():
    assert app_imports("import tfvae.app.zoo") == {"zoo"}
    assert app_imports("import tfvae.zoo") == {"zoo"}
    assert app_imports("from tfvae import app") == {"app"}
    assert app_imports("from tfvae.app import config as c") == {"app", "config"}
    assert app_imports("def f():\n    from tfvae import multi_worker, data") == {"multi_worker"}
    assert app_imports("from tfvae.app.train import train") == {"train"}
    assert app_imports("from tfvae import data, files\nimport tfvae.models") == set()
    assert {"evaluation", "plots", "export", "likelihoods", "models.base"} <= set(LIBRARY)
    assert not {"cli", "train", "zoo", "app.cli", "app.zoo"} & set(LIBRARY)


def test_the_app_modules_live_in_the_app_folder():
    """The folders show the layers: each app module is in tfvae/app/, none is left beside the
    library."""
    for name in APP:
        assert os.path.exists(os.path.join(PACKAGE, APP_FOLDER, f"{name}.py")), name
        assert not os.path.exists(os.path.join(PACKAGE, f"{name}.py")), f"tfvae/{name}.py"
