// The page: MicroPython's WebAssembly port (npm, in node_modules/) runs nanonn's device
// package and the digits models; this file only draws, rasterizes strokes and calls the
// Python in digits.py and learn2d.py. window.nanonnWeb is the page's state (read by
// tests/test_web.py through examples/web/test_page.mjs).
import { loadMicroPython } from "./node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs";

const ROOT = new URL("../../", import.meta.url); // the repository, served by `make web`
const WASM = new URL("./node_modules/@micropython/micropython-webassembly-pyscript/micropython.wasm", import.meta.url);
const MODELS = ["digits_f32.nnm", "digits_int8.nnm"];
const MODULES = ["digits.py", "learn2d.py"];
const TRAIN_EPOCHS = 150; // then the demo pauses (the button continues)
const EPOCHS_PER_STEP = 2;
const GRID = 24;

const state = {
  ready: false,
  error: null,
  stats: {},
  classified: 0, // classifications done (the last one in `digits`)
  digits: null, // {pixels, result, final, ms}
  train: { epochs: 0, losses: [], accuracy: null, running: false },
};
window.nanonnWeb = state;

const $ = (id) => document.getElementById(id);
let mp = null;
let toJs = null;

function fail(err) {
  state.error = String(err && err.message ? err.message : err);
  $("status").textContent = "Error: " + state.error;
  $("status").classList.add("error");
  console.error(err);
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

// ---- start: runtime, files, models ----

async function start() {
  const t0 = performance.now();
  mp = await loadMicroPython({ stdout: (line) => console.log(line), stderr: (line) => console.error(line) });
  toJs = mp.PyProxy.toJs;
  const tRuntime = performance.now();
  // nanonn as mip installs it on a board: the files the repository's package.json lists.
  const manifest = await (await fetch(new URL("package.json", ROOT))).json();
  let packageBytes = 0;
  const files = await Promise.all(
    manifest.urls.map(async ([dest, src]) => [dest, await fetchBytes(new URL(src, ROOT))]),
  );
  for (const [dest, bytes] of files) {
    mp.FS.mkdirTree("/lib/" + dest.slice(0, dest.lastIndexOf("/")));
    mp.FS.writeFile("/lib/" + dest, bytes);
    packageBytes += bytes.length;
  }
  const modelBytes = {};
  for (const name of MODELS) {
    const bytes = await fetchBytes(new URL("build/web/" + name, ROOT));
    mp.FS.writeFile("/" + name, bytes);
    modelBytes[name] = bytes.length;
  }
  for (const name of MODULES) {
    const text = await (await fetch(name)).text();
    mp.FS.writeFile("/" + name, text);
    $("code-" + name.replace(".py", "")).textContent = text;
  }
  const tFiles = performance.now();
  mp.runPython("import os\nos.chdir('/')");
  const digits = mp.pyimport("digits");
  const models = digits.load_models();
  const tModels = performance.now();
  mp.runPython("import sys\n_version = sys.version.split('; ')[1]");
  const wasmBytes = (await fetchBytes(WASM)).length;
  Object.assign(state.stats, {
    micropython: mp.globals.get("_version"),
    wasmBytes,
    packageFiles: files.length,
    packageBytes,
    modelBytes,
    runtimeMs: tRuntime - t0,
    filesMs: tFiles - tRuntime,
    loadModelsMs: tModels - tFiles,
  });
  initDigits(digits, models);
  classifyNow(false); // the first prediction (an empty pad)
  const tFirst = performance.now();
  Object.assign(state.stats, { firstPredictionMs: tFirst - tModels, readyMs: tFirst });
  $("status").textContent =
    `${state.stats.micropython}; first prediction ${Math.round(tFirst)} ms after ` +
    `the page started (runtime ${Math.round(state.stats.runtimeMs)} ms, files ${Math.round(state.stats.filesMs)} ms, ` +
    `models ${Math.round(state.stats.loadModelsMs)} ms).`;
  $("limits").textContent =
    `Runtime micropython.wasm ${(wasmBytes / 1024).toFixed(0)} KiB; nanonn package ${files.length} files, ` +
    `${(packageBytes / 1024).toFixed(0)} KiB of .py; models ${MODELS.map((m) => `${m} ${modelBytes[m]} B`).join(", ")}.`;
  state.ready = true;
  initTraining(mp.pyimport("learn2d"));
}

// ---- digits ----

const pad = { strokes: [], drawing: false, pending: false };
let classifyWith = null;

function initDigits(digits, models) {
  const canvas = $("pad");
  classifyWith = (bitmap) => {
    const pixels = digits.blocks(bitmap); // a Python list, passed back as it is
    const t = performance.now();
    const result = toJs(digits.classify(models, pixels));
    return { pixels: toJs(pixels), result, ms: performance.now() - t };
  };
  const point = (e) => {
    const r = canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * canvas.width) / r.width, ((e.clientY - r.top) * canvas.height) / r.height];
  };
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    pad.drawing = true;
    pad.strokes.push([point(e)]);
    drawPad();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!pad.drawing) return;
    pad.strokes[pad.strokes.length - 1].push(point(e));
    drawPad();
    if (!pad.pending) {
      pad.pending = true;
      requestAnimationFrame(() => {
        pad.pending = false;
        if (pad.drawing) classifyNow(false);
      });
    }
  });
  const end = () => {
    if (!pad.drawing) return;
    pad.drawing = false;
    classifyNow(true);
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("clear").addEventListener("click", () => {
    pad.strokes = [];
    drawPad();
    classifyNow(true);
  });
  drawPad();
}

function drawPad() {
  const ctx = $("pad").getContext("2d");
  ctx.clearRect(0, 0, 280, 280);
  strokePaths(ctx, pad.strokes, 18, (x, y) => [x, y]);
}

function strokePaths(ctx, strokes, width, map) {
  ctx.strokeStyle = ctx.fillStyle = "#000";
  ctx.lineWidth = width;
  ctx.lineCap = ctx.lineJoin = "round";
  for (const stroke of strokes) {
    ctx.beginPath();
    const [x0, y0] = map(...stroke[0]);
    if (stroke.length === 1) {
      ctx.arc(x0, y0, width / 2, 0, 2 * Math.PI);
      ctx.fill();
      continue;
    }
    ctx.moveTo(x0, y0);
    for (const p of stroke.slice(1)) ctx.lineTo(...map(...p));
    ctx.stroke();
  }
}

// The strokes as the digits data set's 32x32 bitmap: the drawing scaled to fill the
// height (or the width, if wider), centred, pen 4 bitmap pixels wide, inked where the
// rendered coverage is at least half. digits.blocks makes the 8x8 input from it.
const PEN = 4;
function bitmap32() {
  const pts = pad.strokes.flat();
  const bits = new Array(1024).fill(0);
  if (!pts.length) return bits;
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = 32 - PEN;
  const scale = Math.min(span / Math.max(y1 - y0, 1), span / Math.max(x1 - x0, 1));
  const ox = 16 - ((x1 - x0) * scale) / 2;
  const oy = 16 - ((y1 - y0) * scale) / 2;
  const off = document.createElement("canvas");
  off.width = off.height = 32;
  const ctx = off.getContext("2d");
  strokePaths(ctx, pad.strokes, PEN, (x, y) => [ox + (x - x0) * scale, oy + (y - y0) * scale]);
  const alpha = ctx.getImageData(0, 0, 32, 32).data;
  for (let i = 0; i < 1024; i++) bits[i] = alpha[4 * i + 3] >= 128 ? 1 : 0;
  return bits;
}

function classifyNow(final) {
  try {
    const out = classifyWith(bitmap32());
    state.digits = { ...out, final };
    state.classified += 1;
    showDigits(out);
  } catch (err) {
    fail(err);
  }
}

function showDigits({ pixels, result }) {
  const ctx = $("input8").getContext("2d");
  for (let i = 0; i < 64; i++) {
    const v = 255 - Math.round((pixels[i] * 255) / 16);
    ctx.fillStyle = `rgb(${v},${v},${v})`;
    ctx.fillRect((i % 8) * 16, Math.floor(i / 8) * 16, 16, 16);
  }
  for (const name of ["float32", "int8"]) {
    const [probs, top, us] = result[name];
    const box = $("model-" + name);
    box.querySelector(".time").textContent = `${us.toFixed(0)} µs/inference`;
    box.querySelector(".bars").innerHTML = probs
      .map(
        (p, d) =>
          `<div class="bar${d === top ? " top" : ""}"><span class="digit">${d}</span>` +
          `<span class="track"><span class="fill" style="display:block;width:${(100 * p).toFixed(1)}%"></span></span>` +
          `<span class="value">${p.toFixed(3)}</span></div>`,
      )
      .join("");
  }
}

// ---- training ----

function initTraining(learn2d) {
  const data = toJs(learn2d.xor_points());
  const [pyX, pyY] = learn2d.xor_points(); // Python lists, passed back as they are
  let net = learn2d.make_network();
  const t = state.train;
  const step = () => {
    if (!t.running) return;
    try {
      const t0 = performance.now();
      const losses = toJs(learn2d.train(net, pyX, pyY, EPOCHS_PER_STEP, t.epochs));
      t.ms = (t.ms || 0) + performance.now() - t0;
      t.losses.push(...losses);
      t.epochs += losses.length;
      if (t.epochs % 6 === 0 || t.epochs >= TRAIN_EPOCHS) drawBoundary(learn2d, net, data);
      drawLoss();
      $("train-status").textContent =
        `epoch ${t.epochs}, loss ${t.losses[t.losses.length - 1].toFixed(4)}, ` +
        `${((1000 * t.epochs * data[0].length) / t.ms).toFixed(0)} samples/s in MicroPython (2-8-2, SGD, momentum 0.9)`;
      if (t.epochs >= TRAIN_EPOCHS && t.epochs % TRAIN_EPOCHS === 0) setRunning(false);
      else setTimeout(step, 0);
    } catch (err) {
      setRunning(false);
      fail(err);
    }
  };
  const setRunning = (running) => {
    t.running = running;
    $("train-toggle").textContent = running ? "Pause" : "Train";
    if (running) setTimeout(step, 0);
  };
  $("train-toggle").addEventListener("click", () => setRunning(!t.running));
  $("train-reset").addEventListener("click", () => {
    net = learn2d.make_network();
    Object.assign(t, { epochs: 0, losses: [], ms: 0 });
    drawBoundary(learn2d, net, data);
    drawLoss();
    if (!t.running) setRunning(true);
  });
  drawBoundary(learn2d, net, data);
  setRunning(true);
}

function drawBoundary(learn2d, net, [X, Y]) {
  const ctx = $("boundary").getContext("2d");
  const probs = new Float32Array(toJs(learn2d.grid(net, GRID)).buffer);
  const cell = 240 / GRID;
  for (let i = 0; i < GRID * GRID; i++) {
    const p = probs[i];
    // class 0 blue, class 1 orange, mixed by the network's P(class 1)
    const r = Math.round(200 + 55 * p);
    const g = Math.round(220 - 40 * p);
    const b = Math.round(255 - 140 * p);
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect((i % GRID) * cell, Math.floor(i / GRID) * cell, cell + 0.5, cell + 0.5);
  }
  for (let k = 0; k < X.length; k++) {
    const [x, y] = X[k];
    ctx.fillStyle = Y[k][1] > 0.5 ? "#d9480f" : "#1c5fd4";
    ctx.beginPath();
    ctx.arc(((x + 1) / 2) * 240, ((1 - y) / 2) * 240, 3, 0, 2 * Math.PI);
    ctx.fill();
  }
}

function drawLoss() {
  const ctx = $("loss").getContext("2d");
  const [w, h, left, bottom] = [380, 200, 44, 22];
  ctx.clearRect(0, 0, w, h);
  const losses = state.train.losses;
  const top = Math.max(0.8, ...losses);
  const n = Math.max(TRAIN_EPOCHS, losses.length);
  ctx.strokeStyle = "#999";
  ctx.fillStyle = "#555";
  ctx.font = "11px sans-serif";
  ctx.beginPath();
  ctx.moveTo(left, 6);
  ctx.lineTo(left, h - bottom);
  ctx.lineTo(w - 6, h - bottom);
  ctx.stroke();
  ctx.fillText(top.toFixed(2), 4, 14);
  ctx.fillText("0", 30, h - bottom);
  ctx.fillText("epoch " + n, w - 70, h - 6);
  ctx.fillText("loss", 6, h / 2);
  ctx.strokeStyle = "#2b6cd4";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  losses.forEach((v, i) => {
    const x = left + ((i + 1) / n) * (w - 6 - left);
    const y = h - bottom - (v / top) * (h - bottom - 6);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

start().catch(fail);
