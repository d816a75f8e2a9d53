import sys

import pytest

from devstack.core.process import error_output, spawn

pytestmark = pytest.mark.unit


def test_a_background_process_that_logs_a_lot_never_blocks_and_its_errors_are_kept() -> None:
    """A pipe nobody read filled at 64 KB and the agent, logging under load, stopped answering
    (its next write blocked): stderr goes to a file."""
    script = "import sys\nfor i in range(20000): sys.stderr.write(f'warning {i}\\n')\nsys.exit(3)"
    process = spawn([sys.executable, "-c", script], None, None)
    assert process.wait(30) == 3  # 240 KB written without anyone reading
    tail = error_output(process, 100)
    assert tail.endswith("warning 19999\n") and len(tail) == 100
