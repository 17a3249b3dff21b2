"""Lua scripts for wrk: one request mix per scenario, ids drawn from the benchmark's store.

Each script prints one JSON line from wrk's `done()` hook with the request count, errors and
latency percentiles (microseconds), which bench_serve.py parses.
"""

from __future__ import annotations

import json
from pathlib import Path

_DONE = r"""
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '\nTHAW_RESULT {"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, errors, summary.errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""

_HEADERS = """
local headers = {}
headers["Content-Type"] = "application/json"
{auth}
"""


# Paced (open-loop) sending: every request reserves the next slot of one schedule at `rate`
# requests/s over all connections, and waits for it (wrk's delay() hook, whole milliseconds; the
# schedule is absolute, so rounding does not drift). A run that falls behind sends at once until it
# has caught up. wrk times a request from when it is sent.
_PACED = r"""
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } thaw_timespec; int clock_gettime(int clk, thaw_timespec *tp); ]]
local clock = ffi.new("thaw_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end
local interval_ms = 1000 / {rate}
local next_ms = nil
delay = function()
  local now = now_ms()
  next_ms = (next_ms or now) + interval_ms
  if next_ms <= now then return 0 end
  return next_ms - now
end
"""


def _lua_list(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


def write_script(
    path: Path, scenario: str, ids: list[str], *, k: int = 10, key: str | None = None, seed: int = 1, rate: float | None = None
) -> Path:
    """Write the wrk script of `scenario` (known, new or similar) to `path`; `rate`: paced at that many requests/s."""
    auth = f'headers["Authorization"] = "Bearer {key}"' if key else ""
    head = f"local ids = {_lua_list(ids)}\nlocal n = #ids\nmath.randomseed({seed})\n" + _HEADERS.replace("{auth}", auth)
    if scenario == "known":
        body = f"""
request = function()
  local id = ids[math.random(n)]
  return wrk.format("GET", "/users/" .. id .. "/recommendations?k={k}", headers)
end
"""
    elif scenario == "similar":
        body = f"""
request = function()
  local id = ids[math.random(n)]
  return wrk.format("GET", "/items/" .. id .. "/similar?k={k}", headers)
end
"""
    elif scenario == "new":
        # An onboarding request: three liked items, as a new user would pick on a welcome screen.
        body = f"""
request = function()
  local liked = '["' .. ids[math.random(n)] .. '","' .. ids[math.random(n)] .. '","' .. ids[math.random(n)] .. '"]'
  local payload = '{{"liked_items": ' .. liked .. ', "k": {k}}}'
  return wrk.format("POST", "/recommendations", headers, payload)
end
"""
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    paced = _PACED.replace("{rate}", repr(float(rate))) if rate else ""
    path.write_text(head + body + paced + _DONE, encoding="utf-8")
    return path


def parse_result(output: str) -> dict[str, float]:
    """The JSON line a script's done() printed."""
    for line in output.splitlines():
        if line.startswith("THAW_RESULT "):
            return json.loads(line[len("THAW_RESULT ") :])
    raise ValueError(f"no THAW_RESULT line in wrk output:\n{output}")
