"""Run a snippet in a fresh Python process under an address-space cap and report its peak
resident memory above the baseline after imports (for the upload memory limits)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PRELUDE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
{imports}
_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_result = {{"error": None}}
try:
{body}
except BaseException as e:  # reported to the parent
    _result["error"] = f"{{type(e).__name__}}: {{e}}"
_result["peak_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - _base) / 1024
print("RESULT " + json.dumps(_result))
"""


def run_capped(imports: str, body: str, cap_mb: int = 1536, timeout: float = 120) -> dict:
    """Run ``body`` (after ``imports``) in a subprocess with ``RLIMIT_AS = cap_mb``.

    Returns:
        {"error": "Type: message" or None, "peak_mb": peak RSS growth over the post-import
        baseline in MB}.
    """
    code = _PRELUDE.format(cap=cap_mb << 20, imports=textwrap.dedent(imports),
                           body=textwrap.indent(textwrap.dedent(body), "    "))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise AssertionError(f"the capped process died (rc {out.returncode}): {out.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])
