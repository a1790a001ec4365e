"""Scrapes a Strom node's /metrics and parses it with the Prometheus client library's
OpenMetrics parser (which refuses anything malformed); prints the samples as JSON lines:
[name, labels, value]."""
import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

url = sys.argv[1]
with urllib.request.urlopen(url, timeout=10) as resp:
    content_type = resp.headers.get("Content-Type", "")
    assert content_type.startswith("application/openmetrics-text"), content_type
    text = resp.read().decode("utf-8")
for family in text_string_to_metric_families(text):
    for s in family.samples:
        print(json.dumps([s.name, s.labels, s.value]))
