// The catdog demo page: send each chosen or dropped photo to POST /predict?explain=1
// and show its label, class probabilities and Grad-CAM overlay. No libraries.
"use strict";

const results = document.getElementById("results");
const statusLine = document.getElementById("status");
const template = document.getElementById("card-template");
let pending = 0;

function percent(p) {
  return (100 * p).toFixed(1) + "%";
}

function showStatus() {
  statusLine.textContent = pending ? `Classifying ${pending} photo${pending > 1 ? "s" : ""}…` : "";
}

async function classify(file) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = file.name;
  card.querySelector(".original").src = URL.createObjectURL(file);
  card.querySelector(".heatmap").hidden = true;
  results.prepend(card);
  pending += 1;
  showStatus();
  try {
    const response = await fetch("/predict?explain=1", {
      method: "POST",
      headers: { "Content-Type": file.type && file.type.startsWith("image/") ? file.type : "application/octet-stream" },
      body: file,
    });
    const answer = await response.json();
    if (!response.ok) {
      throw new Error(answer.error || `HTTP ${response.status}`);
    }
    card.querySelector(".label").textContent = answer.label;
    const list = card.querySelector(".probabilities");
    for (const [name, p] of Object.entries(answer.probabilities)) {
      const item = document.createElement("li");
      item.dataset.className = name;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = percent(p);
      const text = document.createElement("span");
      text.className = "value";
      text.textContent = `${name} ${percent(p)}`;
      item.append(bar, text);
      list.append(item);
    }
    card.querySelector(".timing").textContent =
      `${answer.model}, ${answer.image_size}×${answer.image_size}, ${(1000 * answer.seconds).toFixed(0)} ms`;
    if (answer.explanation) {
      const heatmap = card.querySelector(".heatmap");
      heatmap.src = answer.explanation;
      heatmap.hidden = false;
    }
    card.dataset.label = answer.label;
    card.dataset.state = "done";
  } catch (error) {
    card.querySelector(".label").textContent = "error: " + error.message;
    card.dataset.state = "error";
    card.classList.add("failed");
  } finally {
    pending -= 1;
    showStatus();
  }
}

function classifyAll(files) {
  for (const file of files) {
    classify(file);
  }
}

const input = document.getElementById("file-input");
input.addEventListener("change", () => {
  classifyAll(input.files);
  input.value = "";
});

const zone = document.getElementById("drop-zone");
for (const name of ["dragenter", "dragover"]) {
  zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
}
for (const name of ["dragleave", "drop"]) {
  zone.addEventListener(name, () => zone.classList.remove("dragging"));
}
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  classifyAll(event.dataTransfer.files);
});
// A photo dropped beside the zone should not replace the page.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());

async function showModel() {
  const info = document.getElementById("model-info");
  for (let attempt = 0; attempt < 120; attempt += 1) {
    try {
      const response = await fetch("/metadata");
      if (response.ok) {
        const meta = await response.json();
        let text = `${meta.model}: ${meta.backbone}, ${meta.image_size}×${meta.image_size}, classes ${meta.class_names.join(", ")}`;
        const metrics = meta.training && meta.training.metrics;
        if (metrics && typeof metrics.accuracy === "number") {
          text += `; validation accuracy ${percent(metrics.accuracy)}`;
        }
        info.textContent = text + ` (catdog ${meta.catdog_version}, Keras ${meta.keras_version})`;
        document.body.dataset.ready = "true";
        return;
      }
      info.textContent = (await response.json()).error || "The model is loading…";
    } catch (error) {
      info.textContent = "The server does not answer.";
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

showModel();
