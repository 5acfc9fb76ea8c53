"""`python -m smplify.cli`: the same as the `smplify` command."""
import sys

from smplify.cli import main

sys.exit(main())
