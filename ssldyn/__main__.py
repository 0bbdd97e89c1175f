import sys

from ssldyn.cli import main

sys.exit(main())
