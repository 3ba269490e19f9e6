import sys

from catdog.cli import main

sys.exit(main())
