"""Packaging: the design card's top-level folders install under the nasbench_xfer namespace.

``datasets/``, ``baselines/`` and ``evaluate/`` are also names of popular PyPI
packages, so they are installed as ``nasbench_xfer.datasets``,
``nasbench_xfer.baselines`` and ``nasbench_xfer.evaluate`` and never as
top-level modules.
"""
from setuptools import find_packages, setup

CARD_FOLDERS = ("datasets", "baselines", "evaluate")

packages = find_packages(include=["nasbench_xfer", "nasbench_xfer.*"])
package_dir = {}
for folder in CARD_FOLDERS:
    packages.append(f"nasbench_xfer.{folder}")
    package_dir[f"nasbench_xfer.{folder}"] = folder
    for sub in find_packages(where=folder):
        packages.append(f"nasbench_xfer.{folder}.{sub}")
        package_dir[f"nasbench_xfer.{folder}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"nasbench_xfer.datasets": ["*.h5", "*.md"]},
    include_package_data=True,
)
