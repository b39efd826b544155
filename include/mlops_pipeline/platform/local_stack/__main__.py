"""``python -m mlops_pipeline.platform.local_stack`` (``make airflow``): start the stack, print
its banner, keep it up until Ctrl-C or SIGTERM, then stop it."""

from __future__ import annotations

import signal
import sys
import time

from mlops_pipeline.failures import SpecError
from mlops_pipeline.platform.local_stack import StackError
from mlops_pipeline.platform.local_stack.stack import LocalStack


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    try:
        stack = LocalStack()
    except (StackError, SpecError) as exc:
        print(f"local stack: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _raise_interrupt)
    print(
        f"Starting Airflow, MLflow and {len(stack.usecases)} model server(s) "
        f"({', '.join(stack.usecases)}; logs: {stack.log_dir}) ..."
    )
    try:
        stack.start()
        print(stack.banner(), flush=True)
        while True:
            time.sleep(2)
            stack.check_alive()
    except KeyboardInterrupt:
        print("Stopping ...")
    except StackError as exc:
        print(f"local stack: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    stack.stop()
    print("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
