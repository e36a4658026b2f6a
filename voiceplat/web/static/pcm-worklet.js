// The talk page's microphone path: the AudioContext's rate (44.1/48 kHz, ...) down to the call's
// 8 kHz PCM16, in 20 ms frames posted to the page, which sends them to the robot.
//
// A low-pass FIR (windowed sinc, cut-off 3.6 kHz, at the input rate) runs before resampling so
// nothing above 4 kHz folds back into the call band; the filtered signal is then read at 8 kHz
// steps with linear interpolation (fine for a band-limited signal at 2x or more oversampling).

const OUT_RATE = 8000;
const FRAME = 160; // 20 ms at 8 kHz
const CUTOFF = 3600;

function lowPass(rate, taps) {
  const h = new Float32Array(taps);
  const fc = CUTOFF / rate;
  const mid = (taps - 1) / 2;
  let sum = 0;
  for (let i = 0; i < taps; i++) {
    const x = i - mid;
    const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
    const blackman = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (taps - 1))
      + 0.08 * Math.cos((4 * Math.PI * i) / (taps - 1));
    h[i] = sinc * blackman;
    sum += h[i];
  }
  for (let i = 0; i < taps; i++) h[i] /= sum;
  return h;
}

class Capture8k extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / OUT_RATE; // input samples per output sample
    // About 1.3 ms of filter at any rate (63 taps at 48 kHz): steep enough, little delay.
    this.taps = Math.max(15, 2 * Math.round(sampleRate / 1500) + 1);
    this.h = lowPass(sampleRate, this.taps);
    this.history = new Float32Array(this.taps); // ring of recent inputs
    this.pos = 0;
    this.filtered = [0, 0]; // the last two filtered samples (for interpolation)
    this.t = 0; // position of the next output sample, in input samples after filtered[0]
    this.frame = new Int16Array(FRAME);
    this.n = 0;
  }

  filter(x) {
    const { history, h, taps } = this;
    history[this.pos] = x;
    let acc = 0;
    let j = this.pos;
    for (let i = 0; i < taps; i++) {
      acc += h[i] * history[j];
      j = j === 0 ? taps - 1 : j - 1;
    }
    this.pos = (this.pos + 1) % taps;
    return acc;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    for (let k = 0; k < input.length; k++) {
      this.filtered[0] = this.filtered[1];
      this.filtered[1] = this.filter(input[k]);
      // Output samples that fall between filtered[0] (t=0) and filtered[1] (t=1).
      while (this.t <= 1) {
        const y = this.filtered[0] + (this.filtered[1] - this.filtered[0]) * this.t;
        this.frame[this.n++] = Math.max(-32768, Math.min(32767, Math.round(y * 32767)));
        if (this.n === FRAME) {
          const pcm = this.frame.buffer;
          this.port.postMessage({ pcm, at: currentTime }, [pcm]);
          this.frame = new Int16Array(FRAME);
          this.n = 0;
        }
        this.t += this.step;
      }
      this.t -= 1;
    }
    return true;
  }
}

registerProcessor("voiceplat-capture-8k", Capture8k);
