"""`python -m nasbench_xfer`: the same command line as `nasbench-xfer`."""
from .cli.main import cli

cli()
