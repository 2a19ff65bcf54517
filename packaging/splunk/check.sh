#!/usr/bin/env bash
# The Splunk add-on, as CI checks it: build the .tgz, run Splunk's
# AppInspect on it (zero failures and errors, else this fails with the
# report), then apply its props/eventtypes/tags to every connector's sample
# events (tests/test_cim.py). Installs the two PyPI packages when missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
python3 -c 'import splunk_appinspect, addonfactory_splunk_conf_parser_lib' 2>/dev/null ||
  python3 -m pip install --quiet 'splunk-appinspect==4.3.1' 'addonfactory-splunk-conf-parser-lib==1.0.0'
tgz=$(bash "$here/build.sh")
echo "== splunk-appinspect $tgz"
report=target/splunk/appinspect.json
splunk-appinspect inspect "$tgz" --mode precert --output-file "$report" >target/splunk/appinspect.txt 2>&1 || {
  cat target/splunk/appinspect.txt; echo "splunk-appinspect did not run"; exit 1; }
python3 - "$report" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
summary = report["summary"]
print("   ", ", ".join(f"{k}: {v}" for k, v in summary.items()))
bad = [(c["result"], c["name"], [m.get("message") for m in c.get("messages", [])])
       for r in report["reports"] for g in r["groups"] for c in g["checks"]
       if c["result"] in ("failure", "error", "manual_check")]
for b in bad:
    print("   ", *b)
sys.exit(1 if summary.get("failure", 0) or summary.get("error", 0) else 0)
PY
echo "== CIM mapping on every connector's samples"
python3 -m unittest discover -s "$here/tests" -v
