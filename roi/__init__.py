"""community-roi: what a brand's community earns compared with its paid ads.

Importing the package switches off PyTensor's BLAS probe: every sampler compiles with nutpie's
JAX (or numba) backend and never uses PyTensor's C backend, so the probe only cost time and
printed "PyTensor could not link to a BLAS installation ... installed via pip" at the start of
every run and notebook. An explicit ``blas__ldflags`` in ``PYTENSOR_FLAGS`` is kept.
"""

import os
import warnings

_flags = os.environ.get("PYTENSOR_FLAGS", "")
if "blas__ldflags" not in _flags:
    os.environ["PYTENSOR_FLAGS"] = f"{_flags},blas__ldflags=" if _flags else "blas__ldflags="
# PyTensor imported before this package has read its flags already: silence that one warning.
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation",
                        category=UserWarning)
del _flags
