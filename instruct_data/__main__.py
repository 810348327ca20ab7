import sys

from instruct_data.cli import main

sys.exit(main())
