// fossil serve: the page.  Plain browser JavaScript, no build step, nothing from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  key: localStorage.getItem("fossil-api-key") || "",
  file: null,
  result: null, // the last POST /segment body
  labels: null, // Uint8ClampedArray RGBA of the label map (concept index in red)
  regions: null, // Uint8ClampedArray RGBA of the region map (index + 1 in red + 256 green)
  base: null, // ImageData of the overlay, without the legend
  selected: -1,
};

function authHeaders() {
  return state.key ? { "X-API-Key": state.key } : {};
}

function detailText(detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return detail ? String(detail) : "";
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders() });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const text = detailText(body && body.detail) || response.statusText;
    throw new Error(`${response.status}: ${text}`);
  }
  return body;
}

function setStatus(element, text, error = false) {
  stopClock(element);
  element.textContent = text;
  element.classList.toggle("error", error);
}

// A spinner and the seconds elapsed, ticking while a request runs; setStatus stops it.
const clocks = new Map();

function startClock(element, text) {
  setStatus(element, "");
  const started = performance.now();
  const seconds = el("span", { class: "elapsed" }, "0.0 s");
  element.replaceChildren(el("span", { class: "spinner", "aria-hidden": "true" }), `${text} `,
    seconds);
  clocks.set(element, setInterval(() => {
    seconds.textContent = `${((performance.now() - started) / 1000).toFixed(1)} s`;
  }, 100));
}

function stopClock(element) {
  if (clocks.has(element)) {
    clearInterval(clocks.get(element));
    clocks.delete(element);
  }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "style") node.style.cssText = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function percent(x) {
  return x > 0 && x < 0.001 ? "<0.1%" : `${(100 * x).toFixed(1)}%`;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the browser could not decode an image"));
    image.src = src;
  });
}

// Show the picture as large as the window allows below its top (at most 4x its pixels),
// keeping its aspect ratio; clicks are mapped back through the displayed size.
function fitCanvas() {
  const canvas = $("view");
  if (!canvas.width || !canvas.height || canvas.hidden) return;
  const room = canvas.parentElement.clientWidth;
  const top = canvas.parentElement.getBoundingClientRect().top + window.scrollY;
  const tall = Math.max(320, window.innerHeight - top - 48);
  const scale = Math.min(room / canvas.width, tall / canvas.height, 4);
  canvas.style.width = `${Math.floor(canvas.width * scale)}px`;
  canvas.style.height = `${Math.floor(canvas.height * scale)}px`;
}

function pixelsOf(image, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(image, 0, 0, width, height, 0, 0, width, height);
  return context.getImageData(0, 0, width, height);
}

// Thumbnails: a plain <img src> when no key is needed, else fetched with the key.
async function showThumbnail(img, url) {
  const src = `${url}?highlight=true`;
  if (!state.key) {
    img.src = src;
    return;
  }
  try {
    const response = await fetch(src, { headers: authHeaders() });
    if (response.ok) img.src = URL.createObjectURL(await response.blob());
  } catch (_) {
    img.alt = "thumbnail unavailable";
  }
}

function thumbnailFigure(ref, score) {
  const img = el("img", { class: "thumb", alt: ref.noun || "reference", loading: "lazy" });
  if (ref.thumbnail) showThumbnail(img, ref.thumbnail);
  const caption = el("figcaption", {}, el("b", {}, ref.noun || "?"), ` ${score}`, el("br"),
    ref.caption || "(no caption)");
  return el("figure", { title: ref.caption || "" }, img, caption);
}

function coverageBadge(coverage) {
  if (!coverage) return "";
  return el("span", { class: `badge ${coverage.covered ? "ok" : "warn"}`, title: coverage.reason },
    coverage.covered ? "covered" : "not covered");
}

// ---- segmentation ------------------------------------------------------------------------

// Take the last result off the screen (a new picture, or a request that failed).
function clearResult(keepPicture = false) {
  state.result = null;
  state.selected = -1;
  for (const id of ["legend-box", "details-box", "regions-box", "uncovered"]) $(id).hidden = true;
  $("hover").innerHTML = "&nbsp;";
  if (!keepPicture) $("view").hidden = true;
  document.body.dataset.state = "idle";
}

function chooseFile(file) {
  if (!file) return;
  state.file = file;
  $("drop-text").textContent = `${file.name} (${Math.round(file.size / 1024)} KiB)`;
  clearResult();
  setStatus($("segment-status"), "");
  const url = URL.createObjectURL(file);
  loadImage(url).then((image) => {
    const canvas = $("view");
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    canvas.getContext("2d").drawImage(image, 0, 0);
    canvas.hidden = false;
    fitCanvas();
  }).catch(() => {
    state.file = null;
    setStatus($("segment-status"), `${file.name}: not an image this browser can show; ` +
      "choose a PNG, JPEG or WebP file", true);
    document.body.dataset.state = "error";
  });
}

async function segment(event) {
  event.preventDefault();
  const status = $("segment-status");
  if (!state.file) {
    setStatus(status, "choose an image first", true);
    return;
  }
  const form = new FormData();
  form.append("image", state.file, state.file.name);
  form.append("concepts", $("concepts").value);
  for (const name of ["n", "k", "gamma"]) {
    if ($(name).value !== "") form.append(name, $(name).value);
  }
  if ($("preset").value) form.append("preset", $("preset").value);
  if ($("no-opencut").checked) form.append("no_opencut", "true");
  $("segment-button").disabled = true;
  document.body.dataset.state = "working";
  startClock(status, "segmenting…");
  const started = performance.now();
  try {
    const result = await api("/segment", { method: "POST", body: form });
    await showResult(result);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const shown = result.regions.filter((r) => r.point).length;
    setStatus(status, `${shown} regions shown (${result.regions.length} found); ` +
      `${seconds} s, of which model ${result.seconds} s`);
    document.body.dataset.state = "segmented";
  } catch (error) {
    clearResult(true);
    setStatus(status, error.message, true);
    document.body.dataset.state = "error";
  } finally {
    $("segment-button").disabled = false;
  }
}

async function showResult(result) {
  const [width, height] = result.size;
  const [overlay, labels, regions] = await Promise.all(
    [result.overlay, result.labels, result.regions_map].map(loadImage));
  state.result = result;
  state.base = pixelsOf(overlay, width, height); // the overlay's legend is cut off
  state.labels = pixelsOf(labels, width, height).data;
  state.regions = pixelsOf(regions, width, height).data;
  state.selected = -1;
  const canvas = $("view");
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(state.base, 0, 0);
  canvas.hidden = false;
  fitCanvas();
  showLegend(result);
  showUncovered(result);
  showRegionList(result);
  $("details-box").hidden = false;
  $("details").replaceChildren(el("p", { class: "detail-meta" },
    "Hover over the picture, click a region to see the references that decided it."));
}

function showLegend(result) {
  const sorted = [...result.concepts].sort((a, b) => b.pixels - a.pixels);
  const items = sorted.filter((c) => c.pixels > 0).map((c) =>
    el("li", {}, el("span", { class: "swatch", style: `background:${c.color}` }), c.concept,
      coverageBadge(c.coverage), el("span", { class: "share" }, percent(c.pixels))));
  const absent = sorted.filter((c) => c.pixels === 0);
  if (absent.length) {
    const names = absent.map((c) => (c.coverage && !c.coverage.covered ? `${c.concept} (not covered)` : c.concept));
    items.push(el("li", { class: "absent" }, `no pixels: ${names.join(", ")}`));
  }
  $("legend").replaceChildren(...items);
  $("legend-box").hidden = false;
}

// Concepts the collection does not cover, said plainly above the picture.
function showUncovered(result) {
  const uncovered = result.concepts.filter((c) => c.coverage && !c.coverage.covered);
  const box = $("uncovered");
  box.hidden = uncovered.length === 0;
  if (!uncovered.length) return;
  box.replaceChildren(
    el("b", {}, `Not covered by this collection: ${uncovered.map((c) => c.concept).join(", ")}.`),
    " Their pixels were labelled from the nearest unrelated references, so treat those " +
    "labels as guesses. Add references for them (captions that mention them, or " +
    "`fossil ingest --concepts`).",
    el("ul", {}, ...uncovered.map((c) => el("li", {}, `${c.concept}: ${c.coverage.reason}`))));
}

const TINY_REGION = 0.01; // regions under this share of the image are listed together

function regionButton(result, r) {
  const color = result.concepts[r.concept_index].color;
  const button = el("button", { type: "button", "data-region": r.id,
    "data-x": r.point[0], "data-y": r.point[1] },
    el("span", { class: "swatch", style: `background:${color}` }), `${r.concept}`,
    el("span", { class: "num" }, `${r.score.toFixed(3)} · ${percent(r.pixels)}`));
  button.addEventListener("click", () => selectRegion(r.id));
  return el("li", {}, button);
}

// Largest regions first; the tiny ones folded into one line that opens.
function showRegionList(result) {
  const shown = result.regions.filter((r) => r.point).sort((a, b) => b.pixels - a.pixels);
  const large = shown.filter((r) => r.pixels >= TINY_REGION);
  const tiny = shown.filter((r) => r.pixels < TINY_REGION);
  const items = large.map((r) => regionButton(result, r));
  if (tiny.length) {
    items.push(el("li", { class: "tiny" }, el("details", {},
      el("summary", {}, `${tiny.length} tiny region${tiny.length > 1 ? "s" : ""} ` +
        `(under ${100 * TINY_REGION}% of the image each)`),
      el("ol", { class: "regions" }, ...tiny.map((r) => regionButton(result, r))))));
  }
  $("regions").replaceChildren(...items);
  $("regions-box").hidden = items.length === 0;
}

function pick(event) {
  const canvas = $("view");
  const rect = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) / rect.width) * canvas.width);
  const y = Math.floor(((event.clientY - rect.top) / rect.height) * canvas.height);
  if (!state.result || x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return null;
  const at = 4 * (y * canvas.width + x);
  return {
    x, y,
    concept: state.labels[at],
    region: state.regions[at] + 256 * state.regions[at + 1] - 1,
  };
}

function hover(event) {
  const hit = pick(event);
  if (!hit) return;
  const concept = state.result.concepts[hit.concept];
  const region = hit.region >= 0 ? state.result.regions[hit.region] : null;
  $("hover").textContent = region
    ? `${concept ? concept.concept : "?"} — region ${region.id}, score ${region.score.toFixed(3)}`
    : `${concept ? concept.concept : "?"} — no OpenCut region here (scored patch by patch)`;
}

function click(event) {
  const hit = pick(event);
  if (!hit) return;
  if (hit.region >= 0) {
    selectRegion(hit.region);
    return;
  }
  const concept = state.result.concepts[hit.concept];
  selectRegion(-1);
  $("details").replaceChildren(el("p", { class: "detail-meta" },
    `${concept ? concept.concept : "?"}: no OpenCut region covers this pixel; it was labelled ` +
    "from its own patch. Pick a region from the list."));
}

function drawSelection(index) {
  const canvas = $("view");
  const context = canvas.getContext("2d");
  if (index < 0) {
    context.putImageData(state.base, 0, 0);
    return;
  }
  const shown = new ImageData(new Uint8ClampedArray(state.base.data), state.base.width,
    state.base.height);
  const pixels = shown.data;
  const code = index + 1;
  for (let at = 0; at < pixels.length; at += 4) {
    if (state.regions[at] + 256 * state.regions[at + 1] !== code) {
      pixels[at] *= 0.4;
      pixels[at + 1] *= 0.4;
      pixels[at + 2] *= 0.4;
    }
  }
  context.putImageData(shown, 0, 0);
}

function selectRegion(index) {
  state.selected = index;
  drawSelection(index);
  for (const button of document.querySelectorAll("#regions button")) {
    button.classList.toggle("selected", Number(button.dataset.region) === index);
  }
  if (index < 0) return;
  const region = state.result.regions[index];
  const concept = state.result.concepts[region.concept_index];
  const figures = region.references.map((ref) => thumbnailFigure(ref, `cos ${ref.cosine.toFixed(3)}`));
  $("details").replaceChildren(
    el("div", { class: "detail-head" }, el("span", { class: "swatch", style: `background:${concept.color}` }),
      `${region.concept}`, coverageBadge(concept.coverage)),
    el("p", { class: "detail-meta" },
      `region ${region.id} · score ${region.score.toFixed(3)} (eq. 5) · ${percent(region.pixels)} of the image`),
    el("p", { class: "detail-meta" }, "The references of this concept whose visual embeddings are closest to the region:"),
    el("div", { class: "thumbs", id: "region-thumbs" }, ...figures));
  $("details-box").hidden = false;
}

// ---- references --------------------------------------------------------------------------

async function queryReferences(event) {
  event.preventDefault();
  const status = $("query-status");
  const params = new URLSearchParams({ concepts: $("query-concepts").value });
  if ($("query-n").value) params.set("n", $("query-n").value);
  if ($("query-top").value) params.set("top", $("query-top").value);
  $("query-button").disabled = true;
  startClock(status, "retrieving…");
  try {
    const body = await api(`/query?${params}`);
    const blocks = body.concepts.map((c) => el("div", { class: "concept-result" },
      el("h2", {}, c.concept, coverageBadge(c.coverage)),
      el("p", { class: "detail-meta" },
        `${c.retrieved} references (N ${body.N}), ${c.prototypes} prototypes; ${c.coverage.reason}`),
      el("div", { class: "thumbs" },
        ...c.references.map((ref) => thumbnailFigure(ref, `sim ${ref.score.toFixed(3)}`)))));
    $("query-results").replaceChildren(...blocks);
    setStatus(status, "");
  } catch (error) {
    setStatus(status, error.message, true);
  } finally {
    $("query-button").disabled = false;
  }
}

// ---- set-up ------------------------------------------------------------------------------

function showTab(name) {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.classList.toggle("active", tab.dataset.tab === name);
  }
  $("panel-segment").hidden = name !== "segment";
  $("panel-references").hidden = name !== "references";
}

// What the collection is, the concepts it knows, and the settings it is served with: from
// GET /info (the settings the collection records, else its most frequent nouns).
function showOrientation(info) {
  const settings = info.settings || {};
  const nouns = (info.top_lemmas || []).map((t) => t.lemma);
  const known = settings.examples && settings.examples.length ? settings.examples : nouns;
  const about = settings.about
    ? `This collection is ${settings.about}.`
    : `This collection holds ${info.references} references` +
      (nouns.length ? `; its most frequent nouns are listed below.` : ".");
  $("about-text").textContent = about;
  $("about-concepts").textContent = known.length
    ? `Concepts it knows: ${known.join(", ")}. Others retrieve their nearest references, ` +
      "and a badge says when the collection does not cover them."
    : "It holds no references yet: ingest a caption corpus first.";
  $("about").hidden = false;
  if (known.length) {
    const sample = known.slice(0, 4).join(", ");
    $("concepts").placeholder = sample;
    $("query-concepts").placeholder = sample;
  }
}

async function showStoreInfo() {
  try {
    const info = await api("/info");
    const meta = info.meta || {};
    $("store-info").textContent =
      `${info.references} references · text ${meta.text_encoder || "?"} · visual ${meta.dense_encoder || "?"}`;
    showOrientation(info);
  } catch (error) {
    $("store-info").textContent = error.message.startsWith("401")
      ? "this server needs an API key (top right)" : error.message;
  }
}

function setUp() {
  $("api-key").value = state.key;
  $("api-key").addEventListener("change", () => {
    state.key = $("api-key").value.trim();
    localStorage.setItem("fossil-api-key", state.key);
    showStoreInfo();
  });
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
  $("image").addEventListener("change", () => chooseFile($("image").files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    chooseFile(event.dataTransfer.files[0]);
  });
  $("segment-form").addEventListener("submit", segment);
  $("query-form").addEventListener("submit", queryReferences);
  $("view").addEventListener("mousemove", hover);
  $("view").addEventListener("click", click);
  window.addEventListener("resize", fitCanvas);
  showStoreInfo();
}

setUp();
