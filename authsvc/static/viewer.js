// A small viewer for a phone: one image at a time from Orthanc, rendered by
// Orthanc (/rendered: the file's window, or a contrast preset) as a JPEG at
// the screen's resolution, or lossless at the image's own size on demand
// ("Full quality"); swipe / wheel / slider / keys to move through the slices,
// pinch / buttons / keys to zoom, drag to pan. The next slices are fetched
// ahead, as far as the connection allows (images.js: aheadAllowed).
"use strict";
document.addEventListener("DOMContentLoaded", async () => {
  const root = document.getElementById("viewer");
  const stage = document.getElementById("stage");
  const img = document.getElementById("frame");
  const counter = document.getElementById("counter");
  const slider = document.getElementById("slice");
  const seriesBox = document.getElementById("series");
  const message = document.getElementById("message");
  const preset = document.getElementById("preset");
  const presetBox = document.getElementById("preset-box");
  const webviewer = document.getElementById("webviewer");
  const fullButton = document.getElementById("full-quality");
  const m = pageMessages();

  let series = [], current = 0, index = 0, direction = 1, full = false;
  let zoom = 1, panX = 0, panY = 0;

  const instances = () => (series[current] ? series[current].instances : []);
  // The box the slice is drawn in, in device pixels, no larger than the
  // image itself (Orthanc would enlarge it); null for full quality.
  function box() {
    if (full) return null;
    const s = series[current] || {};
    const width = devicePixels(stage.clientWidth), height = devicePixels(stage.clientHeight);
    return {width: Math.min(width, s.columns || width), height: Math.min(height, s.rows || height)};
  }
  // A file without its own window is shown well by Orthanc's preview only
  // (JPEG, or PNG for full quality, at the image's size); with a window of
  // its own, or with a preset, /rendered.
  const imageUrl = (id) => (!preset.value && series[current] && !series[current].windowed
    ? "/orthanc/instances/" + encodeURIComponent(id) + "/preview"
    : renderedUrl(id, box(), JPEG_QUALITY, preset.value));
  const accept = () => (full ? "image/png" : "image/jpeg");

  // Images fetched, by URL: a promise of a blob: URL. The oldest are dropped
  // (and their memory freed) beyond a few dozen.
  const cache = new Map();
  const CACHE_SIZE = 40;
  // Waits before asking again for a slice that failed (then it is given up).
  const RETRY_MS = [1000, 3000];
  function load(url) {
    if (cache.has(url)) {
      const hit = cache.get(url);
      cache.delete(url);
      cache.set(url, hit);  // most recently used last
      return hit;
    }
    const p = fetchImage(url, accept());
    p.catch(() => cache.delete(url));
    cache.set(url, p);
    while (cache.size > CACHE_SIZE) {
      const [oldest, promise] = cache.entries().next().value;
      cache.delete(oldest);
      promise.then((src) => { if (img.src !== src) URL.revokeObjectURL(src); }, () => {});
    }
    return p;
  }
  // Fetch ahead in the direction of travel, one after the other, so that the
  // slice shown never waits behind them on a slow line.
  let aheadRun = 0;
  async function fetchAhead(from) {
    const run = ++aheadRun, list = instances();
    const wanted = aheadAllowed();
    let done = 0;
    for (let d = 1; d <= wanted; d++) {
      const j = from + d * direction;
      if (j < 0 || j >= list.length) break;
      try { await load(imageUrl(list[j])); } catch (e) { break; }
      if (run !== aheadRun) return;
      done++;
    }
    stage.dataset.ahead = String(done);
  }
  function applyTransform() {
    img.style.transform = "translate(-50%, -50%) translate(" + panX + "px, " + panY + "px) scale(" + zoom + ")";
    stage.dataset.zoom = String(zoom);
  }
  function setZoom(z) {
    zoom = Math.min(8, Math.max(1, z));
    if (zoom === 1) { panX = 0; panY = 0; }
    applyTransform();
  }
  async function show(i) {
    const list = instances();
    if (!list.length) return;
    const next = Math.min(list.length - 1, Math.max(0, i));
    if (next !== index) direction = next > index ? 1 : -1;
    index = next;
    message.textContent = "";
    const url = imageUrl(list[index]);
    stage.dataset.want = url;
    stage.setAttribute("aria-busy", "true");
    const text = m.image_of.replace("{n}", index + 1).replace("{total}", list.length);
    counter.textContent = (index + 1) + " / " + list.length;
    slider.max = String(list.length);
    slider.value = String(index + 1);
    slider.setAttribute("aria-valuetext", text);
    img.alt = text;
    stage.dataset.index = String(index);
    let src;
    for (let attempt = 0; src === undefined; attempt++) {
      try { src = await load(url); } catch (status) {
        if (stage.dataset.want !== url) return;
        if (status === 401) { location.replace("/"); return; }
        message.textContent = status === 0 ? m.network : m.image_failed;
        // A dropped line or a busy server (its check refuses what it could
        // not decide in time) passes: the slice is asked for again, a few
        // times, before the message stays. A missing image does not come back.
        if (status === 404 || attempt >= RETRY_MS.length) { stage.removeAttribute("aria-busy"); return; }
        await new Promise((done) => setTimeout(done, RETRY_MS[attempt]));
        if (stage.dataset.want !== url) return;
      }
    }
    if (stage.dataset.want !== url) return;  // another slice was asked for meanwhile
    message.textContent = "";
    img.dataset.source = url;
    img.src = src;
    fetchAhead(index);
  }
  function selectSeries(k) {
    current = k;
    for (const [n, b] of [...seriesBox.children].entries()) b.setAttribute("aria-pressed", String(n === k));
    // Offered to physicians and staff only (portal.offers_full_viewer).
    if (webviewer) webviewer.href = "/orthanc/web-viewer/app/viewer.html?series=" + encodeURIComponent(series[k].id);
    // The presets are windows in Hounsfield units: CT only.
    const ct = series[k].modality === "CT";
    presetBox.hidden = !ct;
    if (!ct) preset.value = "";
    setZoom(1);
    show(0);
  }

  img.addEventListener("load", () => { stage.dataset.loaded = img.dataset.source; stage.removeAttribute("aria-busy"); });
  img.addEventListener("error", () => { message.textContent = m.image_failed; });
  document.getElementById("prev").addEventListener("click", () => show(index - 1));
  document.getElementById("next").addEventListener("click", () => show(index + 1));
  slider.addEventListener("input", () => show(Number(slider.value) - 1));
  document.getElementById("zoom-in").addEventListener("click", () => setZoom(zoom * 1.5));
  document.getElementById("zoom-out").addEventListener("click", () => setZoom(zoom / 1.5));
  document.getElementById("zoom-reset").addEventListener("click", () => setZoom(1));
  preset.addEventListener("change", () => show(index));
  fullButton.addEventListener("click", () => {
    full = !full;
    fullButton.setAttribute("aria-pressed", String(full));
    show(index);
  });

  stage.addEventListener("keydown", (ev) => {
    const keys = {ArrowUp: -1, ArrowLeft: -1, PageUp: -1, ArrowDown: 1, ArrowRight: 1, PageDown: 1};
    if (ev.key in keys) show(index + keys[ev.key]);
    else if (ev.key === "Home") show(0);
    else if (ev.key === "End") show(instances().length - 1);
    else if (ev.key === "+" || ev.key === "=") setZoom(zoom * 1.5);
    else if (ev.key === "-") setZoom(zoom / 1.5);
    else if (ev.key === "0") setZoom(1);
    else return;
    ev.preventDefault();
  });
  stage.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    if (ev.ctrlKey) setZoom(zoom * (ev.deltaY < 0 ? 1.2 : 1 / 1.2));
    else show(index + (ev.deltaY > 0 ? 1 : -1));
  }, {passive: false});
  stage.addEventListener("dblclick", () => setZoom(zoom > 1 ? 1 : 2));

  // Touch and mouse: one finger scrolls through the slices (or pans when
  // zoomed in), two fingers pinch to zoom.
  const pointers = new Map();
  let start = null;
  const distance = () => { const [a, b] = [...pointers.values()]; return Math.hypot(a.x - b.x, a.y - b.y); };
  stage.addEventListener("pointerdown", (ev) => {
    stage.setPointerCapture(ev.pointerId);
    pointers.set(ev.pointerId, {x: ev.clientX, y: ev.clientY});
    start = pointers.size === 2 ? {pinch: distance(), zoom}
      : {x: ev.clientX, y: ev.clientY, index, panX, panY};
  });
  stage.addEventListener("pointermove", (ev) => {
    if (!pointers.has(ev.pointerId) || !start) return;
    pointers.set(ev.pointerId, {x: ev.clientX, y: ev.clientY});
    if (pointers.size === 2 && start.pinch) { setZoom(start.zoom * distance() / start.pinch); return; }
    if (pointers.size !== 1 || start.pinch) return;
    if (zoom > 1) { panX = start.panX + ev.clientX - start.x; panY = start.panY + ev.clientY - start.y; applyTransform(); }
    else {
      const step = Math.max(8, stage.clientHeight / Math.max(8, instances().length * 2));
      const moved = Math.round((start.y - ev.clientY) / step);
      if (start.index + moved !== index) show(start.index + moved);
    }
  });
  const release = (ev) => { pointers.delete(ev.pointerId); start = null; };
  stage.addEventListener("pointerup", release);
  stage.addEventListener("pointercancel", release);

  let result;
  try {
    const r = await fetch(root.dataset.seriesUrl, {credentials: "same-origin"});
    result = {ok: r.ok, status: r.status, data: await r.json().catch(() => ({}))};
  } catch (e) { result = {ok: false, status: 0, data: {}}; }
  if (result.status === 401) { location.replace("/"); return; }
  if (!result.ok) { message.textContent = errorText(result, true); return; }
  series = result.data.series;
  if (!series.length) { message.textContent = m.no_images; return; }
  series.forEach((s, k) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = [s.modality, s.description || (m.series + " " + (s.number || k + 1))]
      .filter(Boolean).join(" · ") + " (" + s.instances.length + ")";
    b.addEventListener("click", () => selectSeries(k));
    seriesBox.append(b);
  });
  selectSeries(0);
});
