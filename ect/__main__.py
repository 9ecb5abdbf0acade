import sys

from ect.cli import main

if __name__ == "__main__":
    sys.exit(main())
