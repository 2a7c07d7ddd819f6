"""The fleet's one view, served by the coordinator (aiohttp in a thread, 127.0.0.1 by default): ``/status.json``
(``Coordinator.snapshot``: every camera with its engine, node, state, FPS, p95 latency, people and messages
delivered and lost; the engines with their load and capacity; unplaced cameras with the reason; failovers) and
``/``, a page that reloads that JSON once a second and shows it as two tables. Each camera's frames are in the live
view of the engine that runs it only when that engine serves one; this page shows figures, not pictures.
"""
from __future__ import annotations

import asyncio
import html
import json
from typing import Callable

from aiohttp import web

from realtime.view.app_thread import AppThread

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>qem fleet</title>
<style>body{font:14px system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}.running{color:#2e7d32}
.failover,.reconnecting,.connecting,.stalled,.restarting,.starting,.lost{color:#e69100}.unplaced,.failed,.gone{color:#c62828}
</style></head><body><h1>Fleet</h1><h2>Cameras</h2><table id="cameras"><thead><tr><th>camera</th><th>engine</th>
<th>node</th><th>state</th><th>FPS</th><th>p95 ms</th><th>people</th><th>frames</th><th>messages delivered / lost</th>
<th>note</th></tr></thead>
<tbody>__CAMERAS__</tbody></table><h2>Engines</h2><table id="engines"><thead><tr><th>engine</th><th>node</th>
<th>state</th><th>restarts</th><th>load / capacity Mpx/s</th><th>cameras</th></tr></thead><tbody>__ENGINES__</tbody>
</table><script>
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\\"":"&quot;"})[c]);
const sum = (c, k) => c.sinks.reduce((n, s) => n + s[k], 0);
const messages = c => c.sinks.length ? `${sum(c, "delivered")} / ${sum(c, "lost")}` : "–";
const node = x => esc(x.node) + (x.node_id ? ` <small>${esc(x.node_id.slice(0, 8))}</small>` : "");
async function refresh() {
  try {
    const s = await (await fetch("status.json", {cache: "no-store"})).json();
    document.querySelector("#cameras tbody").innerHTML = s.cameras.map(c => `<tr><td>${esc(c.name)}</td>
      <td>${esc(c.engine)}</td><td>${node(c)}</td><td class="${esc(c.state)}">${esc(c.state)}</td>
      <td>${c.fps.toFixed(1)}</td><td>${c.p95_ms === null ? "–" : c.p95_ms.toFixed(0)}</td><td>${c.people}</td>
      <td>${c.frames}</td><td>${messages(c)}</td><td>${esc(c.unplaced || c.error)}</td></tr>`).join("");
    document.querySelector("#engines tbody").innerHTML = s.engines.map(e => `<tr><td>${esc(e.name)}</td>
      <td>${node(e)}</td><td class="${esc(e.state)}">${esc(e.state)}</td><td>${e.restarts}</td>
      <td>${e.load_mpx_s.toFixed(2)} / ${e.capacity_mpx_s.toFixed(2)}</td><td>${esc(e.cameras.join(", "))}</td></tr>`
    ).join("");
  } catch (err) {}
}
setInterval(refresh, 1000);
</script></body></html>"""


def page(snapshot: dict) -> bytes:
    """The page with the tables already filled (it works without JavaScript; the script keeps it fresh)."""
    e = html.escape
    cams = "".join(f"<tr><td>{e(c['name'])}</td><td>{e(str(c['engine'] or ''))}</td><td>{_node(c)}"
                   f"</td><td class=\"{e(c['state'])}\">{e(c['state'])}</td><td>{c['fps']:.1f}</td><td>"
                   f"{_ms(c['p95_ms'])}</td><td>{c['people']}</td><td>{c['frames']}</td><td>{_messages(c)}</td><td>"
                   f"{e(c['unplaced'] or c['error'] or '')}</td></tr>" for c in snapshot["cameras"])
    engines = "".join(f"<tr><td>{e(x['name'])}</td><td>{_node(x)}</td><td class=\"{e(x['state'])}\">"
                      f"{e(x['state'])}</td><td>{x['restarts']}</td><td>{x['load_mpx_s']:.2f} / "
                      f"{x['capacity_mpx_s']:.2f}</td><td>{e(', '.join(x['cameras']))}</td></tr>"
                      for x in snapshot["engines"])
    return PAGE.replace("__CAMERAS__", cams).replace("__ENGINES__", engines).encode()


def _node(row: dict) -> str:
    """The host, and the first characters of the Ray node's id (several nodes may share a host name)."""
    text = html.escape(str(row.get("node") or ""))
    return text + (f" <small>{html.escape(row['node_id'][:8])}</small>" if row.get("node_id") else "")


def _messages(camera: dict) -> str:
    """Messages the camera's sinks delivered, and lost with engine processes that were killed."""
    if not camera["sinks"]:
        return "–"
    return f"{sum(s['delivered'] for s in camera['sinks'])} / {sum(s['lost'] for s in camera['sinks'])}"


def _ms(value) -> str:
    return "–" if value is None else f"{value:.0f}"


class FleetView(AppThread):
    """``snapshot`` (any thread) gives the body of ``/status.json``; ``port`` 0 picks a free port."""

    def __init__(self, snapshot: Callable[[], dict], host: str = "127.0.0.1", port: int = 0):
        self.snapshot = snapshot
        app = web.Application()
        app.add_routes([web.get("/", self._page), web.get("/status.json", self._status)])
        super().__init__(app, host, port, "fleet view")

    async def _snapshot(self) -> dict:
        return await asyncio.get_running_loop().run_in_executor(None, self.snapshot)

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=page(await self._snapshot()), content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(body=json.dumps(await self._snapshot()).encode(), content_type="application/json",
                            headers={"Cache-Control": "no-store"})
