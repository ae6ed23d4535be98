#!/usr/bin/env python3
"""CPU seconds each process name used between two moments (Linux /proc).

  cpu_by_process.py save FILE   remember every process's CPU time so far
  cpu_by_process.py diff FILE   print the CPU seconds used since, per process name
                                (summed over its processes and threads), largest first

bench/compare.sh uses it with CPU_BY_PROCESS=1 to show where a route's CPU went,
servers included (Postgres, ClickHouse, the broker), which a profile of one process
cannot show.
"""
import os, sys, json, collections
def snap():
    d = collections.Counter()
    for pid in os.listdir('/proc'):
        if not pid.isdigit(): continue
        try:
            s = open(f'/proc/{pid}/stat').read()
        except Exception: continue
        comm = s[s.index('(')+1:s.rindex(')')]
        f = s[s.rindex(')')+2:].split()
        d[comm] += int(f[11]) + int(f[12])
    return d
if len(sys.argv) != 3 or sys.argv[1] not in ('save', 'diff'):
    sys.exit(__doc__)
if sys.argv[1] == 'save':
    json.dump(snap(), open(sys.argv[2], 'w'))
else:
    a = collections.Counter(json.load(open(sys.argv[2]))); b = snap()
    hz = os.sysconf('SC_CLK_TCK')
    diff = {k: (b[k]-a.get(k,0))/hz for k in b}
    for k, v in sorted(diff.items(), key=lambda kv: -kv[1])[:15]:
        if v > 0.05: print(f"{v:8.2f}s  {k}")
