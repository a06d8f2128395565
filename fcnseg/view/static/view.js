// fcnseg view: the page's behaviour. The server sends class maps as index PNGs; colouring,
// opacity, class toggles and the class under the pointer are done here, on the canvas.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, labels: null, width: 0, height: 0, shown: [], inspected: false };

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function switchTo(page) {
  showError("");  // a message belongs to the page it was shown on
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.page === page);
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== `page-${page}`;
  if (page === "inspect" && !state.inspected) loadInspection();
  if (page === "training") loadMetrics();
}

// ---------------------------------------------------------------- Segment

function legend(shares) {
  const { classes, palette } = state.info.model;
  const rows = classes.map((name, i) => {
    const [r, g, b] = palette[i];
    const share = shares ? `${(100 * shares[i]).toFixed(1)}%` : "";
    return `<tr data-class="${i}"><td><input type="checkbox" ${state.shown[i] ? "checked" : ""}></td>` +
      `<td><span class="swatch" style="background: rgb(${r},${g},${b})"></span></td>` +
      `<td class="name">${name}</td><td class="share">${share}</td></tr>`;
  });
  $("legend").innerHTML = rows.join("");
  for (const row of $("legend").querySelectorAll("tr")) {
    row.querySelector("input").addEventListener("change", (event) => {
      state.shown[Number(row.dataset.class)] = event.target.checked;
      paint();
    });
  }
}

function paint() {
  if (!state.labels) return;
  const canvas = $("overlay");
  const context = canvas.getContext("2d");
  const out = context.createImageData(state.width, state.height);
  const alpha = Math.round(2.55 * Number($("opacity").value));
  const palette = state.info.model.palette;
  for (let p = 0; p < state.labels.length; p++) {
    const c = state.labels[p];
    if (!state.shown[c]) continue;
    out.data.set([palette[c][0], palette[c][1], palette[c][2], alpha], 4 * p);
  }
  context.putImageData(out, 0, 0);
}

async function segment(file) {
  showError("");
  const form = new FormData();
  form.append("image", file);
  const prompt = $("drop-text").innerHTML;
  $("drop-text").textContent = `Segmenting ${file.name}…`;
  try {
    const result = await getJSON("/api/segment", { method: "POST", body: form });
    const [picture, labels] = await Promise.all([loadImage(URL.createObjectURL(file)), loadImage(result.labels)]);
    state.width = result.width;
    state.height = result.height;
    for (const canvas of [$("picture"), $("overlay")]) {
      canvas.width = result.width;
      canvas.height = result.height;
    }
    $("picture").getContext("2d").drawImage(picture, 0, 0, result.width, result.height);
    const scratch = document.createElement("canvas");
    scratch.width = result.width;
    scratch.height = result.height;
    const context = scratch.getContext("2d");
    context.drawImage(labels, 0, 0);
    const rgba = context.getImageData(0, 0, result.width, result.height).data;
    state.labels = new Uint8Array(result.width * result.height);
    for (let p = 0; p < state.labels.length; p++) state.labels[p] = rgba[4 * p];
    $("download").href = `/api/segment/${result.id}/mask.png`;
    $("download").download = file.name.replace(/\.[^.]*$/, "") + "_mask.png";
    $("result").hidden = false;
    legend(result.shares);
    paint();
  } catch (error) {
    showError(error.message);
  } finally {
    $("drop-text").innerHTML = prompt;
    $("file").value = "";  // the same file chosen again is a new choice
  }
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the browser cannot show this image"));
    image.src = src;
  });
}

function pointer(event) {
  if (!state.labels) return;
  const box = $("overlay").getBoundingClientRect();
  const x = Math.floor(((event.clientX - box.left) / box.width) * state.width);
  const y = Math.floor(((event.clientY - box.top) / box.height) * state.height);
  if (x < 0 || y < 0 || x >= state.width || y >= state.height) return;
  $("under").textContent = state.info.model.classes[state.labels[y * state.width + x]];
}

// ---------------------------------------------------------------- Inspect

async function loadInspection() {
  state.inspected = true;
  try {
    const result = await getJSON("/api/inspect");
    const pct = (v) => (v === null || Number.isNaN(v) ? "—" : `${(100 * v).toFixed(1)}`);
    $("inspect-status").textContent =
      `${result.images.length} images, worst first: mean IU ${pct(result.mean_iu)}, pixel accuracy ${pct(result.pixel_acc)}`;
    $("worst-list").innerHTML = result.images
      .map((r) => `<li data-index="${r.index}">${r.name}: ${pct(r.mean_iu)}</li>`).join("");
    for (const item of $("worst-list").querySelectorAll("li")) item.addEventListener("click", () => showImage(item));
    const classes = state.info.model.classes;
    $("class-iu").innerHTML = "<tr><th class='name'>class</th><th>IU</th></tr>" +
      classes.map((name, i) => `<tr><td class="name">${name}</td><td>${pct(result.per_class_iu[i])}</td></tr>`).join("");
    const header = "<tr><th></th>" + classes.map((n) => `<th>${n}</th>`).join("") + "</tr>";
    $("confusion").innerHTML = header + result.confusion.map((row, i) => {
      const total = row.reduce((a, b) => a + b, 0) || 1;
      return `<tr><th class="name">${classes[i]}</th>` + row.map((count) =>
        `<td style="background: rgba(40, 90, 200, ${(count / total).toFixed(3)})">${count}</td>`).join("") + "</tr>";
    }).join("");
    const first = $("worst-list").querySelector("li");
    if (first) showImage(first);
  } catch (error) {
    state.inspected = false;
    showError(error.message);
  }
}

function showImage(item) {
  for (const other of $("worst-list").querySelectorAll("li")) other.classList.toggle("active", other === item);
  const index = item.dataset.index;
  const kinds = { image: "image", truth: "ground truth", prediction: "prediction", errors: "errors: green right, red wrong, grey ignored" };
  $("inspect-images").innerHTML = Object.entries(kinds).map(([kind, caption]) =>
    `<figure><img alt="${kind}" data-kind="${kind}" src="/api/inspect/${index}/${kind}.png"><figcaption>${caption}</figcaption></figure>`).join("");
}

// ---------------------------------------------------------------- Training

function chart(records, keys, title) {
  const width = 420, height = 240, pad = 36;
  const xs = records.map((r) => r.epoch);
  const values = records.flatMap((r) => keys.map((k) => r[k])).filter((v) => Number.isFinite(v));
  if (!values.length) return "";
  const lo = Math.min(...values), hi = Math.max(...values) || 1;
  const x = (e) => pad + ((e - Math.min(...xs)) / Math.max(1, Math.max(...xs) - Math.min(...xs))) * (width - 2 * pad);
  const y = (v) => height - pad - ((v - lo) / Math.max(1e-12, hi - lo)) * (height - 2 * pad);
  const colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
  const lines = keys.map((k, i) => {
    // Epochs not validated (--val-every) have no scores: the line joins those that do.
    const points = records.filter((r) => Number.isFinite(r[k]))
      .map((r) => `${x(r.epoch).toFixed(1)},${y(r[k]).toFixed(1)}`).join(" ");
    return `<polyline fill="none" stroke="${colours[i]}" stroke-width="2" points="${points}"/>` +
      `<text x="${pad + 110 * i}" y="14" fill="${colours[i]}" font-size="12">${k}</text>`;
  }).join("");
  return `<svg width="${width}" height="${height}" data-title="${title}">` +
    `<text x="${width - pad}" y="${height - 8}" font-size="11" text-anchor="end">epoch ${Math.max(...xs)}</text>` +
    `<text x="4" y="${pad}" font-size="11">${hi.toPrecision(3)}</text><text x="4" y="${height - pad}" font-size="11">${lo.toPrecision(3)}</text>` +
    lines + "</svg>";
}

async function loadMetrics() {
  try {
    const records = await getJSON("/api/metrics");
    $("training-status").textContent = records.length
      ? `${records.length} epochs so far (refreshed every 5 s)` : "no epoch finished yet (refreshed every 5 s)";
    $("curves").innerHTML = chart(records, ["train_loss"], "loss") +
      chart(records, ["mean_iu", "pixel_acc", "mean_acc", "fw_iu"], "validation");
  } catch (error) {
    showError(error.message);
  }
}

// ---------------------------------------------------------------- start

async function start() {
  try {
    state.info = await getJSON("/api/info");
  } catch (error) {
    showError(error.message);
    return;
  }
  const model = state.info.model;
  $("model-name").textContent = `${model.file}: ${model.variant}, ${model.backbone}, ${model.classes.length} classes`;
  state.shown = model.classes.map(() => true);
  legend(null);
  $("tab-inspect").hidden = !state.info.inspect;
  $("tab-training").hidden = !state.info.training;
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => switchTo(tab.dataset.page));
  $("file").addEventListener("change", (event) => event.target.files[0] && segment(event.target.files[0]));
  $("opacity").addEventListener("input", paint);
  $("overlay").addEventListener("mousemove", pointer);
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files[0]) segment(event.dataTransfer.files[0]);
  });
  setInterval(() => { if (!$("page-training").hidden) loadMetrics(); }, 5000);
}

start();
