#!/usr/bin/env bash
# Regenerates the ASR accuracy set: 8 kHz mono 16-bit WAVs + references (ru.tsv, en.tsv).
#
# Needs (Debian/Ubuntu): festival festvox-ru espeak-ng sox
#   apt-get install festival festvox-ru espeak-ng sox
# Russian: Festival's msu_ru_nsh_clunits voice, which reads Cyrillic only (numbers spelled out).
# English: espeak-ng, en-us. Each clip is band-limited to the telephone band (300-3400 Hz) and
# resampled to 8 kHz; benchmarks/asr_accuracy.py then passes it through G.711 mu-law.
# sox runs with -R (repeatable), so regenerating gives the same files for the same tool versions.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

to_call_audio() {  # to_call_audio IN OUT
  sox -R "$1" -r 8000 -c 1 -b 16 -e signed-integer "$2" sinc 300-3400 gain -n -3
}

make_set() {  # make_set LANG: reads "<id>\t<text>" lines on stdin, writes LANG.tsv and WAVs
  local lang=$1 id text
  : >"$lang.tsv"
  while IFS=$'\t' read -r id text; do
    if [[ $lang == ru ]]; then
      printf '%s\n' "$text" >"$tmp/text.txt"
      text2wave -eval "(voice_msu_ru_nsh_clunits)" "$tmp/text.txt" -o "$tmp/raw.wav"
    else
      espeak-ng -v en-us -s 150 -w "$tmp/raw.wav" "$text"
    fi
    to_call_audio "$tmp/raw.wav" "$id.wav"
    printf '%s.wav\t%s\n' "$id" "$text" >>"$lang.tsv"
  done
}

make_set ru <<'TEXTS'
ru_01	Добрый день, подскажите, пожалуйста, ваш адрес.
ru_02	Я хочу перенести встречу на пятницу.
ru_03	Сколько стоит доставка до дома?
ru_04	Мне нужно поговорить с оператором.
ru_05	Когда будет готов мой заказ?
ru_06	У меня не работает интернет уже два дня.
ru_07	Запишите меня на завтра на утро.
ru_08	Нет, спасибо, мне это не интересно.
ru_09	Да, я согласен, оформляйте.
ru_10	Перезвоните мне, пожалуйста, вечером.
ru_11	Какой у вас график работы в выходные?
ru_12	Я забыл пароль от личного кабинета.
ru_13	Можно оплатить картой при получении?
ru_14	Моя фамилия Иванов, номер заказа пятьсот семьдесят три.
ru_15	Хочу отменить подписку.
ru_16	Сколько дней идёт посылка в Новосибирск?
ru_17	Врач принимает в субботу?
ru_18	Подскажите, где ближайший пункт выдачи.
ru_19	У меня списали деньги два раза.
ru_20	Спасибо большое, до свидания.
ru_21	Я не расслышал, повторите, пожалуйста.
ru_22	Мне нужна справка для бассейна.
TEXTS

make_set en <<'TEXTS'
en_01	Hello, I would like to book an appointment.
en_02	Can I speak to a manager, please?
en_03	My order has not arrived yet.
en_04	What time do you close on Saturday?
en_05	I need to change my delivery address.
en_06	Yes, that works for me, thank you.
en_07	No, I do not want to renew my subscription.
en_08	Could you repeat that, please?
en_09	How much does the basic plan cost?
en_10	I was charged twice for the same order.
en_11	Please call me back tomorrow morning.
en_12	Where is the nearest pickup point?
TEXTS

for f in *.wav; do
  printf '%-10s %6.2f s\n' "$f" "$(soxi -D "$f")"
done
