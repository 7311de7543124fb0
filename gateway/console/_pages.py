"""The console's pages: one server-rendered shell each, filled in by console.js.

Everything the pages load is served from here (``/ui/static``): the console works
offline, and nothing comes from a CDN.
"""

from __future__ import annotations

import html

__all__ = ["PAGES", "render"]

# path under /ui, title, the page's own markup
_MODELS = """
<section aria-labelledby="models-title">
  <h1 id="models-title">Models</h1>
  <p class="hint">Every deployment of the registry, updated every two seconds. Loading and
  unloading need the admin key above.</p>
  <table id="models-table">
    <caption class="visually-hidden">Deployments and their state</caption>
    <thead><tr>
      <th scope="col">Model</th><th scope="col">Deployment</th><th scope="col">Engine</th>
      <th scope="col">State</th><th scope="col">Memory</th><th scope="col">Slots busy</th>
      <th scope="col">In flight</th><th scope="col">Queued</th><th scope="col">Actions</th>
    </tr></thead>
    <tbody></tbody>
  </table>
  <p id="models-memory" class="hint"></p>
</section>
"""

_LIVE = """
<section aria-labelledby="live-title">
  <h1 id="live-title">Live</h1>
  <p class="hint">The last five minutes, per model, sampled every two seconds from the
  gateway's own metrics.</p>
  <div id="legend" class="legend" aria-label="Models"></div>
  <div class="charts">
    <figure><figcaption>Tokens per second</figcaption>
      <svg id="chart-tokens" class="chart" role="img" aria-label="Tokens per second"></svg></figure>
    <figure><figcaption>Requests (solid) and errors (dashed) per interval</figcaption>
      <svg id="chart-requests" class="chart" role="img" aria-label="Requests and errors">
      </svg></figure>
    <figure><figcaption>Time to first token, ms</figcaption>
      <svg id="chart-ttft" class="chart" role="img" aria-label="Time to first token"></svg></figure>
    <figure><figcaption>Queue depth and requests in flight (dashed)</figcaption>
      <svg id="chart-queue" class="chart" role="img" aria-label="Queue depth"></svg></figure>
  </div>
  <p id="live-totals" class="hint" aria-live="polite"></p>
</section>
"""

_PLAYGROUND = """
<section aria-labelledby="play-title">
  <h1 id="play-title">Playground</h1>
  <form id="play-form" class="grid">
    <label>Model <select id="play-model" name="model" required></select></label>
    <label>Temperature <input id="play-temperature" type="number" min="0" max="2" step="0.1"
      value="0.7"></label>
    <label>top_p <input id="play-top-p" type="number" min="0" max="1" step="0.05" value="1"></label>
    <label>max_tokens <input id="play-max-tokens" type="number" min="1" step="1" value="256">
    </label>
    <label class="wide">System prompt <textarea id="play-system" rows="2"></textarea></label>
    <label class="wide">Message <textarea id="play-prompt" rows="3" required></textarea></label>
    <div class="wide buttons">
      <button id="play-send" type="submit">Send</button>
      <button id="play-stop" type="button" disabled>Stop</button>
      <button id="play-clear" type="button">Clear the conversation</button>
    </div>
  </form>
  <div id="play-log" class="conversation" aria-live="polite"></div>
  <p id="play-stats" class="stats" aria-live="polite"></p>
</section>
"""

_TRANSLATE = """
<section aria-labelledby="tr-title">
  <h1 id="tr-title">Translate</h1>
  <p class="hint">POST /v1/translate: a SakuraLLM model's own prompt, built from the text,
  the glossary and the previous segment.</p>
  <form id="tr-form" class="grid">
    <label>Model <select id="tr-model" name="model"></select></label>
    <label>max_tokens <input id="tr-max-tokens" type="number" min="1" value="512"></label>
    <label class="wide">Text <textarea id="tr-text" rows="4" required></textarea></label>
    <label class="wide">Previous segment's translation (optional)
      <textarea id="tr-history" rows="2"></textarea></label>
    <fieldset class="wide"><legend>Glossary</legend>
      <table id="tr-glossary">
        <thead><tr><th scope="col">Source</th><th scope="col">Target</th>
          <th scope="col">Note</th><th scope="col"><span class="visually-hidden">Remove</span></th>
        </tr></thead>
        <tbody></tbody>
      </table>
      <button id="tr-add" type="button">Add a term</button>
    </fieldset>
    <div class="wide buttons"><button id="tr-send" type="submit">Translate</button></div>
  </form>
  <output id="tr-result" class="result" aria-live="polite"></output>
  <p id="tr-stats" class="stats" aria-live="polite"></p>
</section>
"""

_LOGS = """
<section aria-labelledby="logs-title">
  <h1 id="logs-title">Logs</h1>
  <p class="hint">The gateway's recent log lines, live; they need the admin key above.</p>
  <label>Filter <input id="logs-filter" type="search" placeholder="request id, level, text">
  </label>
  <table id="logs-table">
    <thead><tr><th scope="col">Time</th><th scope="col">Level</th>
      <th scope="col">Request id</th><th scope="col">Logger</th><th scope="col">Message</th>
    </tr></thead>
    <tbody></tbody>
  </table>
</section>
"""

PAGES = {
    "": ("models", "Models", _MODELS),
    "live": ("live", "Live", _LIVE),
    "playground": ("playground", "Playground", _PLAYGROUND),
    "translate": ("translate", "Translate", _TRANSLATE),
    "logs": ("logs", "Logs", _LOGS),
}


def render(path: str, *, version: str) -> str:
    page, title, body = PAGES[path]
    links = "".join(
        f'<a href="/ui/{p}"{" aria-current=page" if p == path else ""}>{html.escape(t)}</a>'
        for p, (_, t, _b) in PAGES.items()
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · Roundhouse</title>
<link rel="stylesheet" href="/ui/static/console.css?v={html.escape(version)}">
<script src="/ui/static/console.js?v={html.escape(version)}" defer></script>
</head>
<body data-page="{page}">
<header>
  <a class="brand" href="/ui/">Roundhouse</a>
  <nav aria-label="Console">{links}</nav>
  <form id="keys" class="keys" autocomplete="off">
    <label>API key <input id="api-key" type="password" autocomplete="off"></label>
    <label>Admin key <input id="admin-key" type="password" autocomplete="off"></label>
  </form>
</header>
<p id="status" class="status" role="status" aria-live="polite"></p>
<main>{body}</main>
</body>
</html>
"""
