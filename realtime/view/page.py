"""The live view's HTML page: one figure per stream (the MJPEG image, a state band in the state's colour with the
FPS, p95 latency and people count, the redacted source name), and a line per message sink (state, sent, dropped;
for the WebSocket also its clients and their drops).
The server renders the state as it is when the page is asked for; a small script then listens on the WebSocket
``/ws`` and updates the bands from each ``status`` message (pushed twice a second; ``body[data-updates]`` counts
them; a stream that joined the run reloads the page), says ``view offline`` when the connection is gone and connects again every 2 s. No external resources: the
page works on an offline network."""
from __future__ import annotations

import html

from realtime.view.stream_status import figures_text

_STYLE = """
body{background:#111;color:#ddd;font-family:sans-serif;margin:8px}
main{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure.stream{margin:0;width:min(640px,100%)}
figure.stream img{display:block;width:100%;background:#181818;min-height:60px}
.state{color:#fff;padding:6px 10px;font-size:15px;line-height:20px}
.state .text{font-weight:bold;margin-right:10px}
figcaption{font-size:13px;color:#aaa;padding:4px 2px;word-break:break-all}
#sinks{font-size:13px;color:#aaa;margin-top:10px}
"""

_SCRIPT = """
const figures = s => {
  const p95 = s.p95_ms === null ? '\\u2013' : s.p95_ms.toFixed(0);
  return `${s.fps.toFixed(1)} fps \\u00b7 p95 ${p95} ms \\u00b7 ${s.people} ${s.people === 1 ? 'person' : 'people'}`;
};
const clientText = k => k.client_drops === undefined ? '' :
  ` \u00b7 ${k.clients.length} client${k.clients.length === 1 ? '' : 's'} \u00b7 client drops ${k.client_drops}`;
const sinkText = k => `sink ${k.name}: ${k.state} \u00b7 sent ${k.sent} \u00b7 dropped ${k.dropped}${clientText(k)}`;
function show(data) {
  if (data && data.streams.length > document.querySelectorAll('figure.stream').length) location.reload();
  for (const fig of document.querySelectorAll('figure.stream')) {
    const s = data && data.streams[Number(fig.dataset.index)];
    const band = fig.querySelector('.state');
    band.style.background = s ? s.colour : '#616161';
    band.dataset.state = s ? s.state : 'offline';
    band.querySelector('.text').textContent = s ? s.text : 'view offline';
    band.querySelector('.figures').textContent = s ? figures(s) : '';
  }
  const sinks = document.getElementById('sinks');
  sinks.replaceChildren(...(data ? data.sinks : []).map(k => {
    const d = document.createElement('div'); d.className = 'sink'; d.textContent = sinkText(k); return d; }));
}
function listen() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  ws.onmessage = ev => {
    const m = JSON.parse(ev.data);
    if (m.type !== 'status') return;
    show(m);
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  };
  ws.onclose = () => { show(null); setTimeout(listen, 2000); };
}
for (const img of document.querySelectorAll('figure.stream img')) {
  img.onerror = () => setTimeout(() => { img.src = img.dataset.src + '?' + Date.now(); }, 2000);
}
listen();
"""


def _figure(s: dict) -> str:
    src = f"/stream/{s['index']}.mjpg"
    return (f'<figure class="stream" id="stream-{s["index"]}" data-index="{s["index"]}">'
            f'<img src="{src}" data-src="{src}" alt="stream {s["index"]}">'
            f'<div class="state" data-state="{html.escape(s["state"])}" style="background:{s["colour"]}">'
            f'<span class="text">{html.escape(s["text"])}</span>'
            f'<span class="figures">{html.escape(figures_text(s))}</span></div>'
            f'<figcaption>{html.escape(s["name"])}</figcaption></figure>')


def _sink(k: dict) -> str:
    clients = ""
    if "client_drops" in k:
        n = len(k["clients"])
        clients = f' · {n} client{"" if n == 1 else "s"} · client drops {k["client_drops"]}'
    return (f'<div class="sink">sink {html.escape(k["name"])}: {html.escape(k["state"])} · sent {k["sent"]} · '
            f'dropped {k["dropped"]}{clients}</div>')


def page(snapshot: dict) -> bytes:
    """The page for a ``LiveStatus.snapshot()``."""
    items = "\n".join(_figure(s) for s in snapshot["streams"])
    sinks = "".join(_sink(k) for k in snapshot.get("sinks", []))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>qem-pose live</title>"
            f"<meta name='viewport' content='width=device-width'><style>{_STYLE}</style></head>"
            f"<body data-updates='0'><main>\n{items}\n</main><div id='sinks'>{sinks}</div>"
            f"<script>{_SCRIPT}</script></body></html>").encode()
