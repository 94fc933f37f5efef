"""Build hook: maps the top-level folders onto the one `skillmill` import namespace and builds
the native kernels through cffi (see native/README.md).  All metadata lives in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

# Top-level folder -> import package.  The folders stay where the design card puts them; PyPI
# already has unrelated packages called `generator`, `registry` and `templates`.
FOLDERS = {
    "skillmill": "skillmill",
    "skillmill.registry": "registry",
    "skillmill.generator": "generator",
    "skillmill.templates": "templates",
    "skillmill.generated": "generated",
    "skillmill.runtime": "runtime",
    "skillmill.engines": "engines",
    "skillmill.native": "native",
    "skillmill.ir": "ir",
    "skillmill.serving": "serving",
    "skillmill.measure": "measure",
}

packages, package_dir = [], {}
for package, folder in FOLDERS.items():
    package_dir[package] = folder
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

NATIVE_STATUS = "_build_status.txt"


class OptionalBuildExt(build_ext):
    """The C kernels are a fast path, not a requirement: if they cannot be compiled (no
    compiler, say) the install still succeeds and the reason is left in
    skillmill/native/_build_status.txt, which skillmill.native.unavailable_reason() reports."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler surfaces here as a platform/exec error
            self._record(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._record(exc)
        else:
            self._status_path().unlink(missing_ok=True)

    def _status_path(self) -> Path:
        if self.inplace:
            return Path(package_dir["skillmill.native"]) / NATIVE_STATUS
        return Path(self.build_lib) / "skillmill" / "native" / NATIVE_STATUS

    def _record(self, exc: Exception) -> None:
        compiler = getattr(getattr(self, "compiler", None), "compiler_so", None) or ["cc"]
        missing = shutil.which(compiler[0]) is None or "No such file" in str(exc)
        reason = "unavailable: no C compiler" if missing else f"unavailable: C build failed ({exc})"
        path = self._status_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason + "\n")
        print(f"skillmill.native: {reason}; installing without the C kernels")


setup(
    packages=packages,
    package_dir=package_dir,
    cffi_modules=["native/build_native.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)
