"""Build hook: maps the top-level folders onto the one `skillmill` import namespace and builds
the native kernels through cffi (see native/README.md).  All metadata lives in pyproject.toml."""

from setuptools import find_packages, setup

# Top-level folder -> import package.  The folders stay where the design card puts them; PyPI
# already has unrelated packages called `generator`, `registry` and `templates`.
FOLDERS = {
    "skillmill": "skillmill",
    "skillmill.registry": "registry",
    "skillmill.generator": "generator",
    "skillmill.templates": "templates",
    "skillmill.generated": "generated",
    "skillmill.runtime": "runtime",
    "skillmill.native": "native",
    "skillmill.ir": "ir",
}

packages, package_dir = [], {}
for package, folder in FOLDERS.items():
    package_dir[package] = folder
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)
