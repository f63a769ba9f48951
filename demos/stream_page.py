"""The page `demo --serve` serves at `/`: one self-contained HTML file, no external resources.

It shows `/stream.mjpg` in an <img> and polls `/stats.json` twice a second into the panel
(FPS, per-stage milliseconds, class shares of the latest frame, flicker, drops). The token
in the page's own URL is passed on to both requests.
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-deeplab demo</title>
<style>
  body { margin: 0; background: #111; color: #eee; font: 14px/1.4 system-ui, sans-serif; }
  main { display: flex; flex-wrap: wrap; gap: 16px; padding: 12px; }
  #view { max-width: 100%; height: auto; background: #000; min-width: 320px; min-height: 180px; }
  #stats { min-width: 260px; }
  table { border-collapse: collapse; }
  td { padding: 1px 8px 1px 0; font-variant-numeric: tabular-nums; }
  .bar { display: inline-block; height: 10px; vertical-align: middle; }
  #state { color: #f90; }
</style>
</head>
<body>
<main>
  <img id="view" alt="the demo's rendered view">
  <section id="stats" data-updates="0">
    <h3 id="title">edge-deeplab demo</h3>
    <div id="state">connecting...</div>
    <table id="figures"></table>
    <h4>class shares (latest frame)</h4>
    <table id="classes"></table>
  </section>
</main>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
const query = token ? "?token=" + encodeURIComponent(token) : "";
const view = document.getElementById("view");
view.src = "stream.mjpg" + query;
view.onerror = () => { document.getElementById("state").textContent = "stream ended"; };

function num(value, digits) {
  return value === null || value === undefined ? "--" : Number(value).toFixed(digits);
}

function rows(table, entries) {
  table.replaceChildren(...entries.map(([name, value]) => {
    const row = document.createElement("tr");
    for (const cell of [name, value]) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell;
      row.appendChild(td);
    }
    return row;
  }));
}

function shareBar(share, colour) {
  const span = document.createElement("span");
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.style.width = Math.round(120 * share) + "px";
  bar.style.background = colour;
  span.append(bar, " " + (100 * share).toFixed(1) + " %");
  return span;
}

function show(stats) {
  const panel = document.getElementById("stats");
  panel.dataset.updates = String(Number(panel.dataset.updates) + 1);
  panel.dataset.frames = String(stats.frames);
  document.getElementById("title").textContent = stats.model || "edge-deeplab demo";
  document.getElementById("state").textContent = stats.source ? stats.runtime + " on " + stats.source : "";
  const stages = Object.entries(stats.stages || {}).map(([name, ms]) => [name, num(ms, 1) + " ms"]);
  rows(document.getElementById("figures"), [
    ["FPS", num(stats.fps, 1)],
    ["frames", String(stats.frames)],
    ["view", stats.view + "  alpha " + num(stats.alpha, 2)],
    ["latency", num(stats.latency_ms, 1) + " ms"],
    ...stages,
    ["flicker", num(stats.flicker, 4)],
    ["dropped", String(stats.dropped)],
  ]);
  const classes = Object.entries(stats.class_share || {});
  rows(document.getElementById("classes"),
       classes.map(([name, share]) => [name, shareBar(share, (stats.colours || {})[name] || "#888")]));
}

async function poll() {
  try {
    const reply = await fetch("stats.json" + query, {cache: "no-store"});
    if (reply.ok) show(await reply.json());
  } catch (error) {
    document.getElementById("state").textContent = "demo not reachable";
  }
  setTimeout(poll, 500);
}
poll();
</script>
</body>
</html>
"""


def _content_security_policy(page: str) -> str:
    """A strict policy for PAGE: nothing but its own inline script and style (allowed by their
    SHA-256, so no injected script runs), images and requests to this server only."""
    import base64
    import hashlib
    import re

    def digest(tag: str) -> str:
        body = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.S).group(1)
        return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"

    return (f"default-src 'none'; img-src 'self'; connect-src 'self'; script-src {digest('script')}; "
            f"style-src {digest('style')}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


CONTENT_SECURITY_POLICY = _content_security_policy(PAGE)
