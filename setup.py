"""Packaging: the design card's top-level folders ship inside the nasbench_xfer namespace.

``datasets/``, ``baselines/`` and ``evaluate/`` stay at the top of the repository (the
design card's layout) and ``nasbench_xfer/{datasets,baselines,evaluate}`` are symbolic links
to them, so they install, import and type-check only as ``nasbench_xfer.datasets`` etc.
(never as top-level modules: those names belong to popular PyPI packages).  Package
discovery follows the links; wheels and sdists contain the files themselves.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["nasbench_xfer", "nasbench_xfer.*"]),
    package_data={"nasbench_xfer": ["py.typed"], "nasbench_xfer.datasets": ["*.h5", "*.md"]},
    include_package_data=True,
)
