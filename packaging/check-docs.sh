#!/usr/bin/env bash
# Generate the man pages and shell completions from the CLI definition
# (examples/gen-docs.rs → target/assets/) and check them: every page
# renders without a groff/man warning, the bash completion loads and
# completes the subcommands. The .deb and .rpm checks run this first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --example gen-docs -- target/assets
for page in target/assets/man/*.1.gz; do
  warnings=$(MANWIDTH=80 man --warnings=all -l "$page" 2>&1 >/dev/null || true)
  if [ -n "$warnings" ]; then
    echo "man page $page has warnings:"; echo "$warnings"; exit 1
  fi
  MANWIDTH=80 man -l "$page" | grep -q '^NAME' || { echo "man page $page does not render"; exit 1; }
done
echo "== man pages: $(ls target/assets/man | tr '\n' ' ')"
bash -n target/assets/completions/auditrelay.bash
words=$(bash -c 'source target/assets/completions/auditrelay.bash
  COMP_WORDS=(auditrelay ""); COMP_CWORD=1; COMP_LINE="auditrelay "; COMP_POINT=${#COMP_LINE}
  _auditrelay auditrelay "" auditrelay; echo "${COMPREPLY[*]}"')
for sub in run check status replay dead-letters; do
  case " $words " in *" $sub "*) ;; *) echo "bash completion lacks $sub: $words"; exit 1 ;; esac
done
grep -q '^#compdef auditrelay' target/assets/completions/_auditrelay
grep -q 'complete -c auditrelay' target/assets/completions/auditrelay.fish
echo "== completions: bash completes: $words"
