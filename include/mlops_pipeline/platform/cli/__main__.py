import sys

from mlops_pipeline.platform.cli import main

sys.exit(main())
