#!/bin/sh
# Puts the secrets and the external address from the environment into FreeSWITCH's configuration,
# then runs FreeSWITCH (the CMD) in the foreground.
set -eu
conf=${FREESWITCH_CONF:-/usr/local/freeswitch/conf} # (another folder: tests)
if [ -z "${FREESWITCH_ESL_PASSWORD:-}" ]; then
  echo "FREESWITCH_ESL_PASSWORD is not set: the event socket would keep its default password" >&2
  exit 1
fi
case "$FREESWITCH_ESL_PASSWORD" in
  *[!A-Za-z0-9]*) echo "FREESWITCH_ESL_PASSWORD: letters and digits only" >&2; exit 1 ;;
esac
# FreeSWITCH's guess (its own address) unless told: right only without docker's NAT.
external=${FREESWITCH_EXTERNAL_IP:-auto}
case "$external" in
  *[!A-Za-z0-9.:-]*) echo "FREESWITCH_EXTERNAL_IP: an IP address or host name" >&2; exit 1 ;;
esac
sed -i "s|@ESL_PASSWORD@|$FREESWITCH_ESL_PASSWORD|" "$conf/autoload_configs/event_socket.conf.xml"
sed -i "s|@EXTERNAL_IP@|$external|g" "$conf/sip_profiles/voiceplat.xml"
exec "$@"
