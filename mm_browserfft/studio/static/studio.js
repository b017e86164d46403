// mm-browserfft studio: the page. Plain JavaScript, no dependencies.
"use strict";

// The server writes its token into the page it serves (only to a request that carries it, in the URL
// or its cookie): every request that changes something must send it in X-Studio-Token.
const token = document.querySelector('meta[name="studio-token"]').content;
const $ = (id) => document.getElementById(id);
const RECORD_SECONDS = { word: 1.0, noise: 5.0 };
const MIC_IDLE_MS = 20000; // the microphone is released after this long unused
let project = null; // the summary of the project shown
let selected = null; // the name of the project the user chose: replies about another one are dropped
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
const pathOf = (name, suffix = "") => `/api/projects/${encodeURIComponent(name)}${suffix}`;
const projectPath = (suffix = "") => pathOf(project.name, suffix);

// A reply's project summary is shown only if that project is still the one chosen.
function adopt(summary) {
  if (!summary || summary.name !== selected) return false;
  project = summary;
  render();
  return true;
}

function say(text, ok = false) {
  const box = $("message");
  box.textContent = text;
  box.className = ok ? "message ok" : "message";
  box.hidden = !text;
}

// ------------------------------------------------------------------ microphone
const mic = { context: null, stream: null, analyser: null, opening: null, idle: null, listeners: new Set() };

// One microphone for the page, opened once however many buttons ask at the same time; set up
// whole or not at all (a failed open leaves nothing half-built behind).
function openMic() {
  clearTimeout(mic.idle);
  if (mic.context) return Promise.resolve(mic);
  if (!mic.opening) mic.opening = setUpMic().finally(() => { mic.opening = null; });
  return mic.opening;
}

async function setUpMic() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
  });
  // The device's own rate (44.1 or 48 kHz), or the page's ?rate=
  const rate = Number(new URLSearchParams(location.search).get("rate")) || 0;
  const context = rate ? new AudioContext({ sampleRate: rate }) : new AudioContext();
  try {
    await context.audioWorklet.addModule(`/static/capture-worklet.js?token=${encodeURIComponent(token)}`);
    const source = context.createMediaStreamSource(stream);
    const analyser = context.createAnalyser();
    analyser.fftSize = 2048; // as the recogniser sets it (twice its fftSize of 1024): 21.5 Hz bins at 44.1 kHz
    analyser.smoothingTimeConstant = 0;
    const node = new AudioWorkletNode(context, "capture");
    node.port.onmessage = (event) => mic.listeners.forEach((fn) => fn(event.data));
    source.connect(analyser);
    source.connect(node);
    Object.assign(mic, { context, stream, analyser });
  } catch (e) {
    stream.getTracks().forEach((t) => t.stop());
    context.close();
    throw e;
  }
  $("scope-caption").textContent = `microphone at ${mic.context.sampleRate} Hz: AnalyserNode, FFT 2048`;
  drawSpectrogram();
  return mic;
}

// Release the microphone (the browser's recording indicator goes off) once nothing has used it for a while.
function releaseMicWhenIdle() {
  clearTimeout(mic.idle);
  mic.idle = setTimeout(() => {
    if (!mic.context || mic.listeners.size) return;
    mic.stream.getTracks().forEach((t) => t.stop());
    mic.context.close();
    Object.assign(mic, { context: null, stream: null, analyser: null });
    $("scope-caption").textContent = "The browser's own AnalyserNode spectrogram shows here while the microphone is on.";
  }, MIC_IDLE_MS);
}

function drawSpectrogram() {
  const canvas = $("spectrogram");
  const g = canvas.getContext("2d");
  const bins = new Float32Array(mic.analyser.frequencyBinCount);
  const shown = 232; // the model's 232 bins (0-5 kHz at 44.1 kHz)
  const step = () => {
    if (!mic.context || mic.analyser === null) return;
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
async function loadProjects(choose) {
  const { projects } = await api("/api/projects");
  const box = $("project-select");
  box.innerHTML = projects.map((p) => `<option value="${escapeHtml(p)}">${escapeHtml(p)}</option>`).join("")
    || "<option value=''>(none yet)</option>";
  const name = choose || selected || projects[0];
  if (name) { box.value = name; await openProject(name); }
}

async function openProject(name) {
  if (name !== selected) leaveProject();
  selected = name;
  const summary = await api(pathOf(name));
  if (!adopt(summary)) return;
  $("empty").hidden = true;
  $("workspace").hidden = false;
  if (summary.training && summary.training.state === "running") watchTraining();
}

// What the page shows of one project is not carried over to the next.
function leaveProject() {
  clearInterval(poller);
  $("train").disabled = false;
  if (live.on) stopLive();
  showTraining({ state: "none", epochs: [] });
  applyListening(null);
  $("detections").innerHTML = "";
  $("heard").textContent = "…";
  say("");
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
    const noise = label.noise;
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
    card.querySelectorAll(".upload").forEach((input) => (input.onchange = () => upload(input, label.name)));
    card.querySelectorAll(".clip-list li").forEach((li) => {
      li.querySelector(".play").onclick = () => play(clipUrl(label.name, li.dataset.name));
      li.querySelector(".delete").onclick = async (e) => {
        e.target.disabled = true;
        try {
          adopt(await api(clipUrl(label.name, li.dataset.name), { method: "DELETE" }));
        } catch (err) {
          say(err.message);
          e.target.disabled = false;
        }
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
  showTraining(project.training || { state: "none", epochs: [] });
}

function play(url) {
  new Audio(url).play().catch((e) => say(`Cannot play it: ${e.message}`));
}

// The settings `train` calibrated for the model (its model.json) become the live controls' values,
// once per trained model, so that what the page hears is what an app reading the sidecar hears.
// A project without them (never trained, or trained before calibration) gets the page's defaults back.
function applyListening(settings) {
  const key = JSON.stringify(settings || null);
  if (key === live.appliedSettings) return;
  live.appliedSettings = key;
  const value = (id, v) => (settings ? v : $(id).defaultValue);
  for (const [id, v] of [["threshold", settings && settings.probability_threshold],
                         ["overlap", settings && settings.overlap_factor],
                         ["suppression", settings && settings.suppression_ms]]) {
    $(id).value = value(id, v);
    $(id).oninput();
  }
}

async function record(label, seconds, button) {
  const name = selected; // the clip belongs to the project it was recorded for, whatever is chosen meanwhile
  button.disabled = true;
  try {
    await openMic();
    button.classList.add("recording");
    const samples = await capture(seconds);
    const form = new FormData();
    form.append("files", wav(samples, mic.context.sampleRate), `rec-${Date.now()}.wav`);
    const result = await api(pathOf(name, `/clips?label=${encodeURIComponent(label)}`), { method: "POST", body: form });
    adopt(result.project);
  } catch (e) {
    say(`Recording failed: ${e.message}`);
  } finally {
    button.classList.remove("recording");
    button.disabled = false;
    releaseMicWhenIdle();
  }
}

// Upload the files chosen in `input` to `label`, or by their folders: a zip's, or with `byFolder` the
// chosen folder's label folders (each file named by its path in it).
async function upload(input, label, { byFolder = false } = {}) {
  // A folder's hidden files and folders (.git, .DS_Store) stay here: the server would only skip them.
  const hidden = (f) => byFolder && f.webkitRelativePath.split("/").some((part) => part.startsWith("."));
  const files = [...input.files].filter((f) => !hidden(f));
  input.value = ""; // choosing the same files again uploads them again
  if (!files.length) return;
  const name = selected;
  const form = new FormData();
  for (const f of files) form.append("files", f, byFolder ? f.webkitRelativePath : f.name);
  try {
    const query = byFolder ? "?from_folder=1" : label ? `?label=${encodeURIComponent(label)}` : "";
    const result = await api(pathOf(name, `/clips${query}`), { method: "POST", body: form });
    const added = Object.entries(result.added).map(([l, n]) => `${n} to ${l}`).join(", ");
    const skipped = result.skipped.length ? ` Skipped (not audio): ${result.skipped.join(", ")}.` : "";
    if (adopt(result.project)) say(`Added ${added}.${skipped}`, true);
  } catch (e) {
    say(e.message);
  }
}

// ------------------------------------------------------------------ training
async function train(event) {
  event.preventDefault();
  $("train").disabled = true; // a second click would only be told it is training already
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
    $("train").disabled = false;
  }
}

function watchTraining() {
  clearInterval(poller);
  $("train").disabled = true;
  const name = selected;
  const stop = () => { clearInterval(poller); $("train").disabled = false; };
  poller = setInterval(async () => {
    try {
      const status = await api(pathOf(name, "/train"));
      if (name !== selected) return;
      showTraining(status);
      if (status.state !== "running") {
        stop();
        adopt(await api(pathOf(name)));
        if (status.state === "failed") say(`Training failed:\n${status.error}`);
      }
    } catch (e) {
      stop();
      say(`Lost track of the training: ${e.message}`);
    }
  }, 1000);
}

const shown = (v) => (v == null ? "–" : v.toFixed(3)); // a metric that was not finite comes as null

function showTraining(status) {
  const done = status.epochs ? status.epochs.length : 0;
  const total = status.total_epochs || 1;
  $("progress-bar").style.width = `${status.state === "done" ? 100 : (100 * done) / total}%`;
  const last = done ? status.epochs[done - 1] : null;
  $("train-state").textContent = status.state === "running"
    ? (done ? `epoch ${done}/${total} · accuracy ${shown(last.acc)} · loss ${shown(last.loss)}` : "preparing: decoding and embedding the clips…")
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
  const maxLoss = Math.max(...epochs.map((e) => e.loss ?? 0), 1e-6);
  const x = (i) => pad + (epochs.length === 1 ? w : (i * w) / (epochs.length - 1));
  for (const [key, color, scale] of [["acc", "#2f9e44", 1], ["loss", "#e8590c", maxLoss]]) {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    let drawing = false; // a gap where a value was not finite
    epochs.forEach((e, i) => {
      if (e[key] == null) { drawing = false; return; }
      const y = pad + h - (h * e[key]) / scale;
      drawing ? g.lineTo(x(i), y) : g.moveTo(x(i), y);
      drawing = true;
    });
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
    li.querySelector(".play").onclick = () => play(clipUrl(li.dataset.label, li.dataset.name));
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
  if (live.on) return;
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
  releaseMicWhenIdle();
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
    adopt(await api(projectPath("/labels"), { method: "POST", headers: { "Content-Type": "application/json" },
                                              body: JSON.stringify({ name: $("new-label-name").value.trim() }) }));
  } catch (err) {
    say(err.message);
  }
};
$("upload-any").onchange = () => upload($("upload-any"), null);
$("upload-folders").onchange = () => upload($("upload-folders"), null, { byFolder: true });
$("project-select").onchange = () => $("project-select").value && openProject($("project-select").value).catch((e) => say(e.message));
$("train-form").onsubmit = train;
$("live-start").onclick = startLive;
$("live-stop").onclick = stopLive;
loadProjects().catch((e) => say(e.message));
