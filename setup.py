"""tfvae: variational autoencoders for Keras 3, TensorFlow and TensorFlow Probability."""
from setuptools import find_packages, setup

setup(
    name="tfvae",
    version="0.1.0",
    description="A Keras 3 / TensorFlow Probability model zoo of variational autoencoders",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The wheel carries the code, the zoo's registry and the zoo's training configs (zoo/configs
    # installed as tfvae/zoo_configs), not the weights: `tfvae.zoo.load` fetches those.
    packages=find_packages(include=["tfvae", "tfvae.*"]) + ["tfvae.zoo_configs"],
    package_dir={"tfvae.zoo_configs": "zoo/configs"},
    package_data={"tfvae": ["zoo_registry.json"], "tfvae.zoo_configs": ["*.py"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        # The [tf] extra pulls tf-keras, without which `import tensorflow_probability` fails.
        "tensorflow-probability[tf]>=0.24",
        "tensorflow-datasets>=4.9",
        "importlib_resources",  # tensorflow-datasets imports it when it builds a dataset
        "matplotlib>=3.7",
        "tensorboard",  # `tfvae train` logs to <out>/logs; TensorFlow 2.21 no longer pulls it in
        "numpy",
        # PredictionLog protos for the TF Serving warm-up records of an export (tfvae.export).
        "tensorflow-serving-api>=2.16",
    ],
    # scipy: the tests' independent formulas; setuptools and wheel: tests/test_zoo_install.py
    # builds this tree's wheel without build isolation (no network) in a venv of its own.
    # pytest < 9: pytest-xdist 3.8's `--dist loadgroup` renames a test's node id to add its
    # group, which pytest 9 no longer reads (Node.nodeid comes from Node._id): the groups are
    # ignored and every shared fixture is built on both workers.
    extras_require={"test": ["pytest>=7,<9", "pytest-xdist>=3", "hypothesis>=6", "scipy",
                             "setuptools", "wheel"]},
    entry_points={"console_scripts": ["tfvae=tfvae.app.cli:main"]},
)
