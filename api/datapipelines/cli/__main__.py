"""`python -m datapipelines.cli`."""

from datapipelines.cli import main

main()
