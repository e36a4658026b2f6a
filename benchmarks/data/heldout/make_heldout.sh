#!/usr/bin/env bash
# Regenerates the held-out Russian question set of benchmarks/latency.py --halves: 8 kHz mono
# 16-bit WAVs + their texts (ru.tsv: file, text, how it was voiced).
#
# "Held out": questions nobody tuned the robot or the latency work on. Their wording differs from
# benchmarks/data/asr/ru.tsv (the tuned half) and from robots/pipeline_russian/prompt.txt; several
# are long sentences with no comma before their first clause ends ("Доставка анализов в выходные
# может быть включена..."), which is what makes a first chunk wait for punctuation. No farewells:
# a goodbye ends the call.
#
# The voice is not the robot's as the robot speaks it: Festival's msu_ru_nsh_clunits (the only
# Russian voice installed that Whisper understands through the telephone band) shifted in pitch
# and tempo by sox, four "speakers" in turn. espeak-ng ru was tried first and rejected: Whisper
# base transcribes it as noise (WER 2.1 on this set through the telephone band), so the robot
# would answer garbage and the turns would not be the questions written here.
#
# Needs (Debian/Ubuntu): festival festvox-ru sox   (apt-get install festival festvox-ru sox)
# Each clip is band-limited to the telephone band (300-3400 Hz) and resampled to 8 kHz, as in
# benchmarks/data/asr/make_asr_data.sh; the simulator sends it as 20 ms frames. sox runs with -R
# and Festival is deterministic, so regenerating gives the same files for the same tool versions.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "pitch-shift-in-cents tempo-factor": a lower, a higher, a deeper and a quicker speaker.
speakers=("-250 1.08" "200 0.95" "-400 1.0" "350 1.12")
: >ru.tsv
n=0
while IFS=$'\t' read -r id text; do
  read -r cents tempo <<<"${speakers[n % ${#speakers[@]}]}"
  printf '%s\n' "$text" >"$tmp/text.txt"
  text2wave -eval "(voice_msu_ru_nsh_clunits)" "$tmp/text.txt" -o "$tmp/raw.wav"
  sox -R "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$id.wav" \
    pitch "$cents" tempo -s "$tempo" sinc 300-3400 gain -n -3
  printf '%s.wav\t%s\t%s\n' "$id" "$text" "festival msu_ru_nsh_clunits, sox pitch $cents tempo -s $tempo" >>ru.tsv
  n=$((n + 1))
done <<'TEXTS'
ru_h01	Доставка анализов в выходные может быть включена в стоимость или за неё платят отдельно?
ru_h02	Можно ли прийти на приём вместе с ребёнком?
ru_h03	Какие документы нужно взять с собой на первый приём?
ru_h04	Есть ли у вас парковка рядом с клиникой?
ru_h05	Вы принимаете полис добровольного медицинского страхования?
ru_h06	Результаты анализов пришлют на почту или за ними нужно приезжать?
ru_h07	Мне придётся отменить завтрашнюю запись к кардиологу.
ru_h08	Сколько времени обычно занимает осмотр у терапевта?
ru_h09	Моя мама плохо себя чувствует и хотела бы попасть к врачу в ближайшие дни.
ru_h10	Кровь нужно сдавать натощак?
ru_h11	В воскресенье кто-нибудь из врачей работает?
ru_h12	Я опаздываю минут на пятнадцать, меня всё равно примут?
ru_h13	Можно ли после приёма получить больничный лист?
ru_h14	Как до вас доехать от станции метро?
ru_h15	Сколько будет стоить консультация кардиолога вместе с анализом крови?
ru_h16	Пожалуйста перенесите мой приём с понедельника на среду.
ru_h17	Вы выдаёте справки для работы и для спортивной секции?
ru_h18	Здравствуйте у меня болит горло и поднялась температура что мне делать?
ru_h19	Нужна ли предварительная запись на приём или можно прийти просто так?
ru_h20	Терапевт принимает вечером после шести?
TEXTS

for f in ru_h*.wav; do
  printf '%-12s %6.2f s\n' "$f" "$(soxi -D "$f")"
done
