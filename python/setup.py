"""pip install --no-build-isolation <repo>/python: builds fastknn's Python module with the
project's CMake (offline; needs what tools/setup.sh installs) and installs the package.

FASTKNN_CMAKE_ARGS (environment) adds configure arguments, e.g. a Kokkos_ROOT for another
backend. No -march flag is needed: the host kernels are built for every x86-64 level and the
best one the CPU supports is loaded at run time."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def version():
    for line in (ROOT / "CMakeLists.txt").read_text().splitlines():
        if line.startswith("project(FastKNN VERSION"):
            return line.split()[2]
    raise RuntimeError("no project version in CMakeLists.txt")


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = Path(self.build_temp).resolve() / "cmake"
        args = shlex.split(os.environ.get("FASTKNN_CMAKE_ARGS", ""))
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                        "-DFASTKNN_ENABLE_PYTHON=ON", "-DFASTKNN_ENABLE_TESTS=OFF",
                        "-DFASTKNN_ENABLE_TOOLS=OFF", "-DBUILD_SHARED_LIBS=OFF",
                        f"-DFASTKNN_PYTHON_EXECUTABLE={sys.executable}",
                        *args], check=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "fastknn_python", "-j",
                        str(os.cpu_count() or 1)], check=True)
        built = next((build / "python" / "fastknn").glob("_core*.so"))
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        self.copy_file(str(built), str(target))
        # The host kernels of each instruction set (libfastknn_isa_*.so): the module, which
        # holds libfastknn statically, loads the one the CPU supports from its own folder.
        for module in build.glob("libfastknn_isa_*.so"):
            self.copy_file(str(module), str(target.parent / module.name))


setup(
    name="fastknn",
    version=version(),
    description="Exact k-nearest-neighbour search (C++/Kokkos) with scikit-learn estimators",
    packages=["fastknn"],
    ext_modules=[Extension("fastknn._core", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    zip_safe=False,
)
