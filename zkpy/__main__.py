import sys

from zkpy.cli import main

sys.exit(main())
