#!/usr/bin/env bash
# Regenerates tracks/*.wav from the `text` of each track in tracks.json: 8 kHz mono 16-bit WAV.
#
# Needs (Debian/Ubuntu): festival festvox-ru sox python3
#   apt-get install festival festvox-ru sox
# Festival's Russian voice (msu_ru_nsh_clunits) reads Cyrillic only: no digits, Latin letters,
# quotes or dashes in the texts. Synthesis is deterministic and sox runs with -R, so the same tool
# versions give byte-identical files.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p tracks

# One "file<TAB>text" line per track (file defaults to <id>.wav, as the robot loader reads it).
python3 - <<'PY' >"$tmp/list.tsv"
import json
for track in json.load(open("tracks.json", encoding="utf-8"))["tracks"]:
    print(f"{track.get('file') or track['id'] + '.wav'}\t{track['text']}")
PY

while IFS=$'\t' read -r file text; do
  printf '%s\n' "$text" >"$tmp/text.txt"
  text2wave -eval "(voice_msu_ru_nsh_clunits)" "$tmp/text.txt" -o "$tmp/raw.wav"
  # 8 kHz (anti-aliased), peak -3 dBFS, leading/trailing silence trimmed to 50 ms.
  sox -R "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "tracks/$file" \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse pad 0.05 0.05 gain -n -3
  echo "tracks/$file: $(soxi -D "tracks/$file") s"
done <"$tmp/list.tsv"
