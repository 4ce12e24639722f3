"""Evaluation suite (installed as ``nasbench_xfer.evaluate``): search comparisons, ablations, statistics."""
if __name__ != "nasbench_xfer.evaluate":  # one module, one name: never a second copy as `evaluate`
    raise ImportError(f"{__name__!r} is nasbench_xfer's evaluate folder: import nasbench_xfer.evaluate instead")
