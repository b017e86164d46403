// mm-browserfft studio: the page. Plain JavaScript, no dependencies.
"use strict";

const token = new URLSearchParams(location.search).get("token") || sessionStorage.getItem("studio-token") || "";
sessionStorage.setItem("studio-token", token);
const $ = (id) => document.getElementById(id);
const RECORD_SECONDS = { word: 1.0, noise: 5.0 };
const NOISE_LABELS = ["_background_noise_", "_silence_", "background_noise", "Background Noise"];
let project = null; // current project's summary
let poller = null;

// ------------------------------------------------------------------ server
async function api(path, options = {}) {
  const headers = Object.assign({ "X-Studio-Token": token }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: text }; }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}
const projectPath = (suffix = "") => `/api/projects/${encodeURIComponent(project.name)}${suffix}`;

function say(text, ok = false) {
  const box = $("message");
  box.textContent = text;
  box.className = ok ? "message ok" : "message";
  box.hidden = !text;
}

// ------------------------------------------------------------------ microphone
const mic = { context: null, stream: null, source: null, analyser: null, node: null, listeners: new Set() };

async function openMic() {
  if (mic.context) return mic;
  mic.stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
  });
  // The device's own rate (44.1 or 48 kHz), or the page's ?rate=
  const rate = Number(new URLSearchParams(location.search).get("rate")) || 0;
  mic.context = rate ? new AudioContext({ sampleRate: rate }) : new AudioContext();
  await mic.context.audioWorklet.addModule("/static/capture-worklet.js");
  mic.source = mic.context.createMediaStreamSource(mic.stream);
  mic.analyser = mic.context.createAnalyser();
  mic.analyser.fftSize = 1024; // the browser-FFT model's frame
  mic.analyser.smoothingTimeConstant = 0;
  mic.node = new AudioWorkletNode(mic.context, "capture");
  mic.node.port.onmessage = (event) => mic.listeners.forEach((fn) => fn(event.data));
  mic.source.connect(mic.analyser);
  mic.source.connect(mic.node);
  $("scope-caption").textContent = `microphone at ${mic.context.sampleRate} Hz: AnalyserNode, FFT 1024`;
  drawSpectrogram();
  return mic;
}

function drawSpectrogram() {
  const canvas = $("spectrogram");
  const g = canvas.getContext("2d");
  const bins = new Float32Array(mic.analyser.frequencyBinCount);
  const shown = 232; // the model's 232 bins (0-10 kHz at 44.1 kHz)
  const step = () => {
    if (!mic.context) return;
    mic.analyser.getFloatFrequencyData(bins);
    const image = g.getImageData(1, 0, canvas.width - 1, canvas.height);
    g.putImageData(image, 0, 0);
    for (let y = 0; y < canvas.height; y++) {
      const bin = Math.floor(((canvas.height - 1 - y) / canvas.height) * shown);
      const level = Math.max(0, Math.min(1, (bins[bin] + 100) / 70));
      g.fillStyle = `hsl(${230 - 200 * level}, 85%, ${8 + 55 * level}%)`;
      g.fillRect(canvas.width - 1, y, 1, 1);
    }
    requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

function capture(seconds) {
  // Resolves with mono Float32 samples of `seconds` of microphone audio.
  return new Promise((resolve) => {
    const wanted = Math.round(seconds * mic.context.sampleRate);
    const parts = [];
    let have = 0;
    const take = (block) => {
      parts.push(block);
      have += block.length;
      if (have >= wanted) {
        mic.listeners.delete(take);
        const out = new Float32Array(wanted);
        let at = 0;
        for (const p of parts) { out.set(p.subarray(0, Math.min(p.length, wanted - at)), at); at += p.length; if (at >= wanted) break; }
        resolve(out);
      }
    };
    mic.listeners.add(take);
  });
}

function wav(samples, rate) {
  // 16-bit PCM mono WAV.
  const data = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (at, s) => [...s].forEach((c, i) => data.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF"); data.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE"); text(12, "fmt ");
  data.setUint32(16, 16, true); data.setUint16(20, 1, true); data.setUint16(22, 1, true);
  data.setUint32(24, rate, true); data.setUint32(28, rate * 2, true); data.setUint16(32, 2, true);
  data.setUint16(34, 16, true); text(36, "data"); data.setUint32(40, samples.length * 2, true);
  samples.forEach((v, i) => data.setInt16(44 + i * 2, Math.max(-1, Math.min(1, v)) * 32767, true));
  return new Blob([data.buffer], { type: "audio/wav" });
}

// ------------------------------------------------------------------ projects and examples
async function loadProjects(select) {
  const { projects } = await api("/api/projects");
  const box = $("project-select");
  box.innerHTML = projects.map((p) => `<option>${escapeHtml(p)}</option>`).join("") || "<option value=''>(none yet)</option>";
  const name = select || (project && project.name) || projects[0];
  if (name) { box.value = name; await openProject(name); }
}

async function openProject(name) {
  project = await api(`/api/projects/${encodeURIComponent(name)}`);
  $("empty").hidden = true;
  $("workspace").hidden = false;
  render();
  if (project.training && project.training.state === "running") watchTraining();
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function clipUrl(label, name) {
  return projectPath(`/clips/${encodeURIComponent(label)}/${encodeURIComponent(name)}`);
}

function render() {
  const labels = $("labels");
  labels.innerHTML = "";
  for (const label of project.labels) {
    const noise = NOISE_LABELS.includes(label.name);
    const card = document.createElement("div");
    card.className = "label-card";
    card.dataset.label = label.name;
    card.innerHTML = `
      <h4>${escapeHtml(label.name)} <small><span class="count">${label.clips.length}</span> clips</small></h4>
      <div class="row">
        <button class="record">Record ${noise ? RECORD_SECONDS.noise : RECORD_SECONDS.word} s</button>
        <label class="button secondary">Upload<input class="upload" type="file" accept="audio/*,.zip" multiple hidden></label>
        <label class="button secondary">Folder<input class="upload" type="file" webkitdirectory multiple hidden></label>
      </div>
      <ul class="clip-list">${label.clips.map((c) => `<li data-name="${escapeHtml(c)}"><span>${escapeHtml(c)}</span>
        <button class="play" title="play">▶</button><button class="delete" title="delete">✕</button></li>`).join("")}</ul>`;
    card.querySelector(".record").onclick = (e) => record(label.name, noise ? RECORD_SECONDS.noise : RECORD_SECONDS.word, e.target);
    card.querySelectorAll(".upload").forEach((input) => (input.onchange = () => upload(input.files, label.name)));
    card.querySelectorAll(".clip-list li").forEach((li) => {
      li.querySelector(".play").onclick = () => new Audio(clipUrl(label.name, li.dataset.name)).play();
      li.querySelector(".delete").onclick = async () => {
        project = await api(clipUrl(label.name, li.dataset.name), { method: "DELETE" });
        render();
      };
    });
    labels.appendChild(card);
  }
  const model = project.model;
  for (const [id, what, ok] of [["download-tflite", "tflite", model.tflite], ["download-tfjs", "tfjs", model.tfjs],
                                 ["download-labels", "labels", model.tflite], ["download-report", "report", !!model.report]]) {
    const link = $(id);
    link.href = projectPath(`/download/${what}`);
    link.classList.toggle("disabled", !ok);
  }
  showReport(model.report);
  applyListening(model.listening);
  if (project.training) showTraining(project.training);
}

// The settings `train` calibrated for the model (its model.json) become the live controls' values,
// once per trained model, so that what the page hears is what an app reading the sidecar hears.
function applyListening(settings) {
  const key = JSON.stringify(settings || null);
  if (!settings || key === live.appliedSettings) return;
  live.appliedSettings = key;
  for (const [id, value] of [["threshold", settings.probability_threshold], ["overlap", settings.overlap_factor],
                             ["suppression", settings.suppression_ms]]) {
    $(id).value = value;
    $(id).oninput();
  }
}

async function record(label, seconds, button) {
  try {
    await openMic();
    button.classList.add("recording");
    button.disabled = true;
    const samples = await capture(seconds);
    const form = new FormData();
    form.append("files", wav(samples, mic.context.sampleRate), `rec-${Date.now()}.wav`);
    const result = await api(projectPath(`/clips?label=${encodeURIComponent(label)}`), { method: "POST", body: form });
    project = result.project;
    render();
  } catch (e) {
    say(`Recording failed: ${e.message}`);
  } finally {
    button.classList.remove("recording");
    button.disabled = false;
  }
}

async function upload(files, label) {
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  try {
    const query = label ? `?label=${encodeURIComponent(label)}` : "";
    const result = await api(projectPath(`/clips${query}`), { method: "POST", body: form });
    project = result.project;
    const added = Object.entries(result.added).map(([l, n]) => `${n} to ${l}`).join(", ");
    say(`Added ${added}.`, true);
    render();
  } catch (e) {
    say(e.message);
  }
}

// ------------------------------------------------------------------ training
async function train(event) {
  event.preventDefault();
  try {
    const status = await api(projectPath("/train"), {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ epochs: Number($("epochs").value), whole_model: $("whole-model").checked,
                             for_listening: $("for-listening").checked }),
    });
    say("");
    showTraining(status);
    watchTraining();
  } catch (e) {
    say(e.message);
  }
}

function watchTraining() {
  clearInterval(poller);
  $("train").disabled = true;
  poller = setInterval(async () => {
    const status = await api(projectPath("/train"));
    showTraining(status);
    if (status.state !== "running") {
      clearInterval(poller);
      $("train").disabled = false;
      project = await api(projectPath());
      render();
      if (status.state === "failed") say(`Training failed:\n${status.error}`);
    }
  }, 1000);
}

function showTraining(status) {
  const done = status.epochs ? status.epochs.length : 0;
  const total = status.total_epochs || 1;
  $("progress-bar").style.width = `${status.state === "done" ? 100 : (100 * done) / total}%`;
  const last = done ? status.epochs[done - 1] : null;
  $("train-state").textContent = status.state === "running"
    ? (done ? `epoch ${done}/${total} · accuracy ${last.acc.toFixed(3)} · loss ${last.loss.toFixed(3)}` : "preparing: decoding and embedding the clips…")
    : status.state === "done" ? `trained ${total} epochs` : status.state === "failed" ? "training failed" : "";
  drawCurves(status.epochs || []);
}

function drawCurves(epochs) {
  const canvas = $("curves");
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const pad = 30, w = canvas.width - 2 * pad, h = canvas.height - 2 * pad;
  g.strokeStyle = "#d8dbe6"; g.strokeRect(pad, pad, w, h);
  g.fillStyle = "#6b7280"; g.font = "12px system-ui";
  g.fillText("accuracy", pad, pad - 10); g.fillText("loss (scaled)", pad + 80, pad - 10);
  if (!epochs.length) return;
  const maxLoss = Math.max(...epochs.map((e) => e.loss), 1e-6);
  const x = (i) => pad + (epochs.length === 1 ? w : (i * w) / (epochs.length - 1));
  for (const [key, color, scale] of [["acc", "#2f9e44", 1], ["loss", "#e8590c", maxLoss]]) {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    epochs.forEach((e, i) => { const y = pad + h - (h * e[key]) / scale; i ? g.lineTo(x(i), y) : g.moveTo(x(i), y); });
    g.stroke();
  }
}

function showReport(report) {
  $("results").hidden = !report;
  $("worst-wrap").hidden = !(report && report.worst && report.worst.length);
  if (!report) return;
  $("accuracy").textContent = report.accuracy == null ? "–" : `${(100 * report.accuracy).toFixed(1)} %`;
  $("test-clips").textContent = report.test_clips || 0;
  const labels = report.labels || [];
  const rows = report.confusion_matrix || [];
  $("confusion").innerHTML = `<tr><th>truth \\ heard</th>${labels.map((l) => `<th>${escapeHtml(l)}</th>`).join("")}</tr>` +
    rows.map((r, i) => `<tr><th>${escapeHtml(labels[i])}</th>${r.map((n, j) => `<td class="${i === j ? "diag" : ""}">${n}</td>`).join("")}</tr>`).join("");
  $("worst").innerHTML = (report.worst || []).map((w) => `<li data-label="${escapeHtml(w.label_dir)}" data-name="${escapeHtml(w.name)}">
    <span>${escapeHtml(w.name)}: ${escapeHtml(w.label)} heard as ${escapeHtml(w.predicted)} (${w.score.toFixed(2)})</span>
    <button class="play" title="play">▶</button></li>`).join("");
  $("worst").querySelectorAll("li").forEach((li) => {
    li.querySelector(".play").onclick = () => new Audio(clipUrl(li.dataset.label, li.dataset.name)).play();
  });
}

// ------------------------------------------------------------------ live
const live = { on: false, pending: [], session: `page-${Math.random().toString(36).slice(2)}`, timer: null };

async function startLive() {
  try {
    await openMic();
  } catch (e) {
    say(`No microphone: ${e.message}`);
    return;
  }
  live.on = true;
  live.pending = [];
  live.session = `page-${Math.random().toString(36).slice(2)}`;
  mic.listeners.add(collect);
  $("live-start").disabled = true;
  $("live-stop").disabled = false;
  live.timer = setInterval(sendLive, 250);
}

function collect(block) { if (live.on) live.pending.push(block); }

async function sendLive() {
  if (!live.pending.length) return;
  const blocks = live.pending.splice(0);
  const samples = new Float32Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of blocks) { samples.set(b, at); at += b.length; }
  const q = new URLSearchParams({ session: live.session, rate: mic.context.sampleRate, threshold: $("threshold").value,
                                  overlap: $("overlap").value, suppression_ms: $("suppression").value });
  try {
    const { detections } = await api(projectPath(`/listen?${q}`), { method: "POST", body: samples.buffer,
                                                                     headers: { "Content-Type": "application/octet-stream" } });
    for (const d of detections) showDetection(d);
  } catch (e) {
    say(e.message);
    stopLive();
  }
}

function showDetection(d) {
  const heard = $("heard");
  heard.textContent = d.label;
  heard.classList.add("fired");
  setTimeout(() => heard.classList.remove("fired"), 600);
  const li = document.createElement("li");
  li.innerHTML = `<b>${escapeHtml(d.label)}</b> · score ${d.score.toFixed(2)} · at ${d.start_s.toFixed(2)}–${d.end_s.toFixed(2)} s`;
  $("detections").prepend(li);
}

function stopLive() {
  live.on = false;
  clearInterval(live.timer);
  mic.listeners.delete(collect);
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
}

// ------------------------------------------------------------------ wiring
for (const [id, fmt] of [["threshold", (v) => String(Math.round(Number(v) * 1000) / 1000)], ["overlap", (v) => Number(v).toFixed(2)], ["suppression", (v) => `${v} ms`]]) {
  $(id).oninput = () => { $(`${id}-value`).textContent = fmt($(id).value); };
}
$("new-project").onsubmit = async (e) => {
  e.preventDefault();
  const words = $("new-project-words").value.split(",").map((w) => w.trim()).filter(Boolean);
  try {
    await api("/api/projects", { method: "POST", headers: { "Content-Type": "application/json" },
                                 body: JSON.stringify({ name: $("new-project-name").value.trim(), words }) });
    say("");
    await loadProjects($("new-project-name").value.trim());
  } catch (err) {
    say(err.message);
  }
};
$("new-label").onsubmit = async (e) => {
  e.preventDefault();
  try {
    project = await api(projectPath("/labels"), { method: "POST", headers: { "Content-Type": "application/json" },
                                                  body: JSON.stringify({ name: $("new-label-name").value.trim() }) });
    render();
  } catch (err) {
    say(err.message);
  }
};
$("upload-any").onchange = () => upload($("upload-any").files, null);
$("project-select").onchange = () => $("project-select").value && openProject($("project-select").value);
$("train-form").onsubmit = train;
$("live-start").onclick = startLive;
$("live-stop").onclick = stopLive;
loadProjects().catch((e) => say(e.message));
