"""python -m backprop: the command line."""

from .cli import main

raise SystemExit(main())
