"""``python -m mlops_pipeline.platform.local_stack`` (``make airflow``): start the stack, print
its banner, keep it up until Ctrl-C or SIGTERM, then stop it (``shutdown``)."""

from __future__ import annotations

import sys

from mlops_pipeline.failures import SpecError
from mlops_pipeline.platform.local_stack import StackError
from mlops_pipeline.platform.local_stack.shutdown import serve
from mlops_pipeline.platform.local_stack.stack import LocalStack


def main() -> int:
    try:
        stack = LocalStack()
    except (StackError, SpecError) as exc:
        print(f"local stack: {exc}", file=sys.stderr)
        return 1
    print(
        f"Starting Airflow, MLflow and {len(stack.usecases)} model server(s) "
        f"({', '.join(stack.usecases)}; logs: {stack.log_dir}) ...",
        flush=True,
    )
    return serve(stack)


if __name__ == "__main__":
    sys.exit(main())
