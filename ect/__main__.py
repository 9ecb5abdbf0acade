import sys

from ect.cli import main

sys.exit(main())
