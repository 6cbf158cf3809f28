// Orthanc's images sized for a phone on a slow network. An <img> cannot ask
// for a JPEG (browsers accept image/*, and Orthanc then answers PNG, three to
// four times larger), so images are fetched with `Accept: image/jpeg` and
// shown from a blob: URL. Sizes are the screen's: never more pixels than
// shown, never more than the image has.
"use strict";

const JPEG_QUALITY = 80;        // browsing: about 25 KB for a noisy 512x512 CT slice
const THUMB_QUALITY = 70;       // the list's thumbnails: a few KB

// Device pixels for `cssPixels`, the ratio capped at 2 (a sharper thumbnail
// or slice is not worth the bytes on a small screen).
function devicePixels(cssPixels) {
  return Math.max(1, Math.ceil(cssPixels * Math.min(2, window.devicePixelRatio || 1)));
}

// The /rendered URL of an instance: `box` {width, height} in device pixels
// (null: the image's own size, lossless), `window` "center,width" or "".
function renderedUrl(id, box, quality, window) {
  const q = new URLSearchParams();
  if (box) {
    q.set("width", String(box.width));
    q.set("height", String(box.height));
    q.set("quality", String(quality));
  }
  if (window) {
    const [center, width] = window.split(",");
    q.set("window-center", center);
    q.set("window-width", width);
  }
  const query = q.toString();
  return "/orthanc/instances/" + encodeURIComponent(id) + "/rendered" + (query ? "?" + query : "");
}

// GET an image as `accept`; resolves to a blob: URL, rejects with the HTTP
// status (0: no network, "aborted" when `signal` aborted it).
async function fetchImage(url, accept, signal) {
  let r;
  try {
    r = await fetch(url, {credentials: "same-origin", headers: {Accept: accept}, signal});
  } catch (e) {
    throw (signal && signal.aborted) ? "aborted" : 0;
  }
  if (!r.ok) throw r.status;
  return URL.createObjectURL(await r.blob());
}

// How many images to fetch ahead of the one shown: what the connection
// allows, where the browser says (navigator.connection); else a few.
function aheadAllowed() {
  const c = navigator.connection;
  if (!c) return 3;
  if (c.saveData) return 0;
  if (c.effectiveType === "slow-2g" || c.effectiveType === "2g") return 0;
  if (c.effectiveType === "3g") return 1;
  return 4;
}

// The list's thumbnails: <img class="thumb" data-instance="…">, loaded as
// JPEGs when they come into view.
document.addEventListener("DOMContentLoaded", () => {
  const thumbs = [...document.querySelectorAll("img.thumb[data-instance]")];
  if (!thumbs.length) return;
  const load = (img) => {
    const size = devicePixels(img.width || 96);
    fetchImage(renderedUrl(img.dataset.instance, {width: size, height: size}, THUMB_QUALITY, ""), "image/jpeg")
      .then((src) => {
        img.addEventListener("load", () => URL.revokeObjectURL(src), {once: true});
        img.src = src;
      })
      .catch(() => { img.classList.add("failed"); });
  };
  if (!("IntersectionObserver" in window)) { thumbs.forEach(load); return; }
  const seen = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (e.isIntersecting) { seen.unobserve(e.target); load(e.target); }
    }
  }, {rootMargin: "200px"});
  thumbs.forEach((img) => seen.observe(img));
});
