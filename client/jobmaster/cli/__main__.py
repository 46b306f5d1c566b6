"""`python -m jobmaster.cli`: the same as the `jobmaster` command."""
from . import main

main()
