#!/usr/bin/env bash
# `make test-pythons`: the README's two commands on each supported Python, as a new user
# would run them. For each interpreter of PYTHONS: a fresh clone of HEAD in
# build/pythons/<version>/, `make PYTHON=<it> repro` then `make test` there, each timed,
# and `dvc metrics diff` of that rerun against HEAD's committed metrics.
#
#   PYTHONS="python3.11 python3.12 python3.13" DATA_MIRROR=../shared/data make test-pythons
#
# With pyenv, name the interpreters by path: PYTHONS="$(pyenv prefix 3.12.1)/bin/python ...".
# The first set-up on a version downloads its torch/torchvision wheels (several GB).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mirror=${DATA_MIRROR:-$root/../shared/data}
case $mirror in /* | *://*) ;; *) mirror=$(cd "$mirror" && pwd) ;; esac  # the clones are elsewhere
out=$root/build/pythons
failed=0
mkdir -p "$out"
row() { printf '%-8s %-40s %-10s %-10s %s\n' "$@"; }
for py in ${PYTHONS:-python3.11 python3.12 python3.13}; do
  version=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) || {
    echo "$py: does not run here, skipped"; failed=1; continue; }
  dir=$out/${version%.*}
  rm -rf "$dir" && git clone -q "$root" "$dir" || exit 1
  cd "$dir" || exit 1
  step() {  # step NAME TARGET: run `make TARGET` in the clone, log it, print "OK 123s" or "FAIL 123s"
    local start=$SECONDS
    if DATA_MIRROR=$mirror make PYTHON="$py" "$2" > "$1.log" 2>&1; then echo "OK $((SECONDS - start))s"
    else echo "FAIL $((SECONDS - start))s"; fi
  }
  echo "== $py ($version) in $dir"
  repro=$(step repro repro)
  tests=$(step test test)
  .venv/bin/dvc metrics diff HEAD --md --precision 6 > metrics-diff.md 2>&1
  changed=$(grep -c '^| metrics/' metrics-diff.md)
  [ "$changed" = 0 ] && verdict="identical" || verdict="$changed metrics differ (metrics-diff.md)"
  row "${version%.*}" "$py" "${repro// /:}" "${tests// /:}" "$verdict" | tee result.txt
  case "$repro$tests" in *FAIL*) failed=1; tail -n 5 repro.log test.log ;; esac
  cd "$root" || exit 1
done
echo; row version python repro test "metrics vs HEAD"; cat "$out"/*/result.txt  # the latest run of each version
exit $failed
