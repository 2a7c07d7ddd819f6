"""What a person watches: poses drawn on frames (``render``), the on-screen window (``display``), and the browser
view: the aiohttp server with MJPEG, ``/status.json`` and ``/ws`` (``server``), its page (``page``), the state drawn
over a stream that is not running (``overlay``) and the per-stream figures it shows (``stream_status``)."""
