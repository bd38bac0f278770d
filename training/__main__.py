"""``python -m training <method> ...`` — see :mod:`training.cli`."""
import sys

from training.cli import main

sys.exit(main())
