"""Build the Cython extensions of fastmlp.

Environment switches (all off by default):
  FASTMLP_DEBUG=1   compile with bounds and wraparound checks on (for a debug test run)
  FASTMLP_NATIVE=1  add -march=native (fast on this CPU, crashes on older ones: never for wheels)
  FASTMLP_THREADS=0 build the serial step (one thread per fit, same results for the same n_threads)
"""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("FASTMLP_DEBUG") == "1"
compile_args = ["-O3"]
link_args = []
if os.environ.get("FASTMLP_NATIVE") == "1":
    compile_args.append("-march=native")
macros = []
if os.environ.get("FASTMLP_THREADS", "1") == "0" or sys.platform == "win32":
    macros.append(("FASTMLP_NO_THREADS", "1"))
else:
    compile_args.append("-pthread")
    link_args.append("-pthread")

extensions = [
    Extension(f"fastmlp.{name}", [f"src_c/{name}.pyx"], include_dirs=["src_c"],
              define_macros=macros, extra_compile_args=compile_args, extra_link_args=link_args)
    for name in ("kernels", "_sgd")
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["src_c"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "initializedcheck": debug,
            "cdivision": True,
        },
    ),
)
