import sys

from kdfair.cli import main

sys.exit(main())
