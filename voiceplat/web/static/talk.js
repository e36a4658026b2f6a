// The "Talk to a robot" page: microphone -> 8 kHz PCM16 (pcm-worklet.js) -> the robot's port
// (ws://host:ws_port/web); the robot's 8 kHz audio back into a play queue; the live transcript.
// window.voiceplatTalk holds the page's state for tests and the curious (outputPeak, turns, ...).
(() => {
  "use strict";
  const root = document.getElementById("talk");
  const $ = (id) => document.getElementById(id);
  const startButton = $("start"), hangupButton = $("hangup"), aecBox = $("aec");
  const statusLine = $("status"), meter = $("meter"), list = $("transcript");
  const params = new URLSearchParams(location.search);
  if (params.get("aec") === "0") aecBox.checked = false;

  const talk = window.voiceplatTalk = {
    state: "idle", callId: null, endReason: null, error: null,
    outputPeak: 0, level: 0, turns: {}, clears: 0,
    stats: { framesSent: 0, chunksPlayed: 0, playLeadMs: [], baseLatencyMs: null,
             outputLatencyMs: null, sampleRate: null, sendTimes: [], recvTimes: [], hopMs: [] },
    resetPeak() { talk.outputPeak = 0; },
  };
  const KEEP = 500; // timestamps kept for the latency figures (the first frames of a call)
  const keep = (list, value) => { if (list.length < KEEP) list.push(value); };
  let ws = null, ctx = null, stream = null, analyser = null, output = null, meterTimer = null;
  let playing = new Set(), nextStart = 0;

  function setState(state, text) {
    talk.state = state;
    root.dataset.state = state;
    if (text !== undefined) statusLine.textContent = text;
    startButton.disabled = state === "connecting" || state === "in_call";
    hangupButton.disabled = state !== "in_call";
    const hint = $("greeting-hint"); // "The robot greets first: …" is for a call to come
    if (hint) hint.hidden = state === "ended";
  }

  async function start() {
    setState("connecting", "Starting the microphone…");
    talk.error = null; talk.endReason = null; talk.callId = null; talk.turns = {};
    list.replaceChildren();
    statusLine.className = "muted";
    const aec = aecBox.checked;
    if (!window.isSecureContext || !navigator.mediaDevices) {
      return fail("The browser gives the microphone only to https:// pages or http://localhost "
        + "(open the service through 127.0.0.1, an SSH tunnel, or a TLS proxy).");
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: {
        channelCount: 1, echoCancellation: aec, noiseSuppression: aec, autoGainControl: aec } });
      ctx = new AudioContext({ latencyHint: "interactive" });
      await ctx.audioWorklet.addModule(window.VOICEPLAT_WORKLET);
      await ctx.resume();
    } catch (err) {
      return fail(`microphone or audio unavailable: ${err.message || err}`);
    }
    talk.stats.sampleRate = ctx.sampleRate;
    talk.stats.baseLatencyMs = (ctx.baseLatency || 0) * 1000;
    const capture = new AudioWorkletNode(ctx, "voiceplat-capture-8k", { numberOfOutputs: 1 });
    const mute = ctx.createGain();
    mute.gain.value = 0; // the capture node must be pulled by the graph; nothing is heard
    ctx.createMediaStreamSource(stream).connect(capture).connect(mute).connect(ctx.destination);
    output = ctx.createGain();
    analyser = ctx.createAnalyser();
    analyser.fftSize = 512;
    output.connect(analyser).connect(ctx.destination);
    meterTimer = setInterval(measure, 50);

    const host = root.dataset.wsHost || location.hostname;
    // Behind a TLS proxy the page is https: its socket must be wss (the proxy's port, then);
    // a robot with its own certificate (tls in its config) speaks wss whatever the page is.
    const scheme = location.protocol === "https:" || root.dataset.wsTls ? "wss" : "ws";
    // media_auth: a browser's WebSocket cannot send headers, so its token rides in the query.
    const token = root.dataset.wsToken ? `?token=${encodeURIComponent(root.dataset.wsToken)}` : "";
    ws = new WebSocket(`${scheme}://${host}:${root.dataset.wsPort}/web${token}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      const caller = $("caller").value.trim();
      ws.send(JSON.stringify(caller ? { robot: root.dataset.robot, caller } : { robot: root.dataset.robot }));
      setState("in_call", "In the call: speak.");
      capture.port.onmessage = (event) => {
        if (!ws || ws.readyState !== WebSocket.OPEN) return;
        ws.send(event.data.pcm);
        talk.stats.framesSent++;
        keep(talk.stats.sendTimes, Date.now());
        // How far the audio clock moved between the worklet's post and this send (the hop).
        keep(talk.stats.hopMs, (ctx.currentTime - event.data.at) * 1000);
      };
    };
    ws.onmessage = (event) => {
      if (typeof event.data === "string") onEvent(JSON.parse(event.data));
      else { keep(talk.stats.recvTimes, Date.now()); play(event.data); }
    };
    ws.onerror = () => { if (talk.state === "connecting") fail(`cannot reach the robot at ${ws.url}`); };
    ws.onclose = (event) => {
      if (event.code !== 1000 && !talk.error && talk.state !== "ended") {
        talk.error = event.reason || `connection closed (${event.code})`;
      }
      stop();
      const why = talk.error ? `Call ended: ${talk.error}` : `Call ended (${talk.endReason || "closed"}).`;
      setState("ended", why);
      statusLine.className = talk.error ? "error" : "muted";
    };
  }

  function onEvent(message) {
    if (message.type === "call") {
      talk.callId = message.call_id;
      root.dataset.callId = message.call_id;
      const link = document.createElement("a");
      link.href = `/calls/${encodeURIComponent(message.call_id)}`;
      link.textContent = message.call_id;
      link.title = "this call's page: transcript, recording, latency";
      $("call-id").replaceChildren("call ", link);
    } else if (message.type === "clear") {
      clearPlayback();
    } else if (message.type === "turn") {
      showTurn(message);
    } else if (message.type === "error") {
      talk.error = message.message;
    } else if (message.type === "ended") {
      talk.endReason = message.end_reason;
    }
  }

  function play(buffer) {
    const pcm = new Int16Array(buffer);
    if (!pcm.length || !ctx) return;
    const audio = ctx.createBuffer(1, pcm.length, 8000); // the context resamples it
    const samples = audio.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
    const source = ctx.createBufferSource();
    source.buffer = audio;
    source.connect(output);
    const now = ctx.currentTime;
    if (nextStart < now) {
      // The queue had run dry (a new turn): how long until this chunk is heard.
      nextStart = now + 0.005;
      talk.stats.outputLatencyMs = (ctx.outputLatency || 0) * 1000;
      talk.stats.playLeadMs.push((nextStart - now) * 1000 + (ctx.baseLatency || 0) * 1000
        + (ctx.outputLatency || 0) * 1000);
    }
    source.start(nextStart);
    nextStart += audio.duration;
    playing.add(source);
    source.onended = () => playing.delete(source);
    talk.stats.chunksPlayed++;
  }

  function clearPlayback() {
    // Barge-in: what the page still holds is never played.
    for (const source of playing) { try { source.stop(); } catch (_) { /* not started */ } }
    playing.clear();
    nextStart = 0;
    talk.clears++;
  }

  function measure() {
    if (!analyser) return;
    const data = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(data);
    let peak = 0;
    for (const x of data) peak = Math.max(peak, Math.abs(x));
    talk.level = peak;
    talk.outputPeak = Math.max(talk.outputPeak, peak);
    root.dataset.peak = talk.outputPeak.toFixed(4);
    meter.style.width = `${Math.min(100, peak * 200)}%`;
  }

  function showTurn(turn) {
    talk.turns[turn.idx] = turn;
    let item = list.querySelector(`li[data-idx="${turn.idx}"]`);
    if (!item) {
      item = document.createElement("li");
      item.dataset.idx = turn.idx;
      const later = [...list.children].find((li) => Number(li.dataset.idx) > turn.idx);
      list.insertBefore(item, later || null);
    }
    item.className = `${turn.role}${turn.interrupted ? " interrupted" : ""}`;
    item.dataset.role = turn.role;
    item.dataset.interrupted = String(Boolean(turn.interrupted));
    if (turn.v2v_ms != null) item.dataset.v2v = String(Math.round(turn.v2v_ms));
    const who = turn.role === "user" ? "you" : "robot";
    const v2v = turn.v2v_ms != null ? ` · v2v ${Math.round(turn.v2v_ms)} ms` : "";
    item.replaceChildren();
    const label = document.createElement("span");
    label.className = "who";
    label.textContent = `${who}${v2v}${turn.interrupted ? " · interrupted" : ""}`;
    const said = document.createElement("span");
    said.className = "said";
    const text = turn.text || "";
    if (turn.interrupted && turn.heard_text != null) {
      // As on the call page: the heard part as is, only the rest struck out (the caller cut it).
      const heard = document.createElement("span"), unheard = document.createElement("span");
      heard.className = "heard";
      heard.title = "what you heard";
      unheard.className = "unheard";
      unheard.title = "not heard: you interrupted";
      const split = splitHeard(text, turn.heard_text);
      if (split) {
        [heard.textContent, unheard.textContent] = split;
        said.append(heard, unheard);
      } else { // heard_text is not the text's start: both, the whole text struck
        heard.textContent = turn.heard_text;
        unheard.textContent = text;
        said.append(heard, " / ", unheard);
      }
    } else {
      said.textContent = text || "…";
    }
    item.append(label, said);
  }

  // [heard, unheard] of a cut turn's text, or null where heard_text is not its start. heard_text
  // is whole sentences joined by spaces, plus the heard words of the cut one and "…".
  function splitHeard(text, heardText) {
    const core = heardText.replace(/…$/, "").trim();
    if (text.startsWith(core)) return [core, text.slice(core.length)];
    let at = 0;
    for (const word of core.split(/\s+/)) {
      const found = text.indexOf(word, at);
      if (found < 0 || text.slice(at, found).trim()) return null;
      at = found + word.length;
    }
    return [text.slice(0, at), text.slice(at)];
  }

  function hangup() {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "hangup" }));
    setState("ending", "Hanging up…");
  }

  function stop() {
    clearInterval(meterTimer);
    meterTimer = null;
    meter.style.width = "0";
    if (stream) stream.getTracks().forEach((track) => track.stop());
    if (ctx) ctx.close();
    stream = null; ctx = null; analyser = null; ws = null; playing = new Set(); nextStart = 0;
  }

  function fail(text) {
    talk.error = text;
    stop();
    setState("ended", text);
    statusLine.className = "error";
  }

  startButton.addEventListener("click", start);
  hangupButton.addEventListener("click", hangup);
})();
