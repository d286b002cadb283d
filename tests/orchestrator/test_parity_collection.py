"""The parity file without ltx-core: an error in a whole-suite run, left out of a ``-m gpu`` run (a GPU host's check)."""

from __future__ import annotations

import subprocess
import sys

from tests.orchestrator.conftest import REPO

# ltx-core made unimportable in the child, as on a machine without the parity extra
HIDE = "import sys; sys.modules['ltx_core'] = None; sys.modules['ltx_pipelines'] = None; import pytest; "


def _collect(*args: str) -> subprocess.CompletedProcess:
    # the folder, as a user runs it: pytest never consults ignore hooks for a file named on the command line
    code = HIDE + f"raise SystemExit(pytest.main({list(args)!r} + ['--collect-only', '-q', '-p', 'no:cacheprovider', 'tests/generators']))"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_missing_reference_fails_collection_unless_the_run_selects_other_markers():
    whole = _collect()
    assert whole.returncode == 2 and "ltx_core" in whole.stdout  # an error, never a skip
    assert _collect("-m", "parity").returncode == 2
    gpu = _collect("-m", "gpu")
    assert gpu.returncode == 0 and "test_ltx2_parity" not in gpu.stdout, gpu.stdout
    assert "test_gpu_option_against_bf16" in gpu.stdout  # the GPU checks are still collected
