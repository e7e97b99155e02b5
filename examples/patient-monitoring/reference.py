"""The patient-monitoring query computed the slow, obvious way, as a check
on Weir's output: every event of a finite file counts (none is late), and
windows are (start, end] as in Azure Stream Analytics.

    python3 examples/patient-monitoring/reference.py vitals.ndjson > expected.ndjson
"""

import json
import sys
from collections import defaultdict
from datetime import datetime, timezone

WINDOW_MS = 5 * 60 * 1000


def millis(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


groups = defaultdict(list)
with open(sys.argv[1]) as f:
    for line in f:
        e = json.loads(line)
        t = millis(e["EventTime"])
        end = -(-t // WINDOW_MS) * WINDOW_MS  # ceiling: a time on a boundary closes the window before it
        groups[(end, e["PatientId"])].append(e)

for (end, patient), events in sorted(groups.items()):
    avg = sum(e["HeartRate"] for e in events) / len(events)
    if avg > 100:
        row = {
            "window_start": iso(end - WINDOW_MS),
            "window_end": iso(end),
            "PatientId": patient,
            "AvgHeartRate": avg,
            "MaxTemperature": max(e["Temperature"] for e in events),
        }
        print(json.dumps(row, separators=(",", ":")))
