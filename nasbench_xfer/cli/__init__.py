"""The ``nasbench-xfer`` command line (click). One module per command group."""
