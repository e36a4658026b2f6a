"""FreeSWITCH mod_audio_stream (WebSocket media) with the event socket (ESL) for control."""
