"""HTTP load with `wrk`: a fixed number of keep-alive connections, POST bodies cycled from a
precomputed list (built once per thread in Lua's `init`, after wrk knows the Host header, so
per-request client CPU stays small), warm-up discarded.

wrk is a closed-loop generator: latency percentiles are per completed request at the chosen
concurrency, not under an open arrival rate.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx responses plus socket errors


def wrk_binary() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not on PATH (apt-get install -y wrk)")
    return binary


def _lua(path: str, bodies: list[str]) -> str:
    quoted = ",\n".join(f"  [[{body}]]" for body in bodies)
    return f"""local payloads = {{
{quoted}
}}
local requests = {{}}
init = function(args)
  for i, body in ipairs(payloads) do
    local headers = {{["Content-Type"] = "application/json", ["Host"] = wrk.host}}
    requests[i] = wrk.format("POST", "{path}", headers, body)
  end
end
local n = 0
request = function()
  n = n % #requests + 1
  return requests[n]
end
"""


def _parse(output: str) -> LoadResult:
    percentiles = {int(q): float(v) * _UNITS[u] for q, v, u in _LATENCY.findall(output)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if rps is None or total is None or 50 not in percentiles or 99 not in percentiles:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(g) for g in sockets.groups()) if sockets else 0
    return LoadResult(float(rps.group(1)), percentiles[50], percentiles[99],
                      int(total.group(1)), errors)  # fmt: skip


def run_wrk(
    url: str, bodies: list[str], script_dir: Path, *, duration: float, warmup: float,
    connections: int,
) -> LoadResult:  # fmt: skip
    """POST `bodies` (cycled) to `url` for `duration` s after a `warmup` s run; one wrk thread."""
    base, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    script = script_dir / f"wrk-{abs(hash((url, len(bodies))))}.lua"
    script.write_text(_lua("/" + path, bodies), encoding="utf-8")
    target = f"{base}://{host}/"
    common = [wrk_binary(), "-t1", f"-c{connections}", "--latency", "--timeout", "5s",
              "-s", str(script)]  # fmt: skip
    if warmup > 0:
        subprocess.run([*common, f"-d{max(1, round(warmup))}s", target],
                       check=True, capture_output=True)  # fmt: skip
    done = subprocess.run([*common, f"-d{max(1, round(duration))}s", target],
                          check=True, capture_output=True, text=True)  # fmt: skip
    return _parse(done.stdout)
