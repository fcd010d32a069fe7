#!/usr/bin/env bash
# Installs the system packages rnnkit needs (espeak-ng, optional flite and festival: the offline speech corpus builder).
set -u
need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
# flite is optional (a second synthesizer with voices modelled on real speakers).
command -v flite >/dev/null 2>&1 || need+=(flite)
# festival + voices from real speakers (kal, ked diphones; CMU ARCTIC slt HTS) are optional too.
command -v text2wave >/dev/null 2>&1 || need+=(festival)
for v in kallpc16k kdlpc16k us-slt-hts; do
  dpkg -s "festvox-$v" >/dev/null 2>&1 || need+=("festvox-$v")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${need[@]}" >/dev/null; }) \
    || echo "rnnkit: could not install ${need[*]}; speech tests will be skipped. Install it with: sudo apt-get install ${need[*]}" >&2
else
  echo "rnnkit: missing system packages: ${need[*]}. Install them with: sudo apt-get install ${need[*]} (speech tests are skipped until then)" >&2
fi
exit 0
