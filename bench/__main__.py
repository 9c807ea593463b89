import sys

import cli

cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

from bench.run import main  # noqa: E402

sys.exit(main())
