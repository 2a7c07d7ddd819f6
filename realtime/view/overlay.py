"""Keeps a stream that is not running visible in the live view: its last frame, dimmed, with its state drawn on a
coloured band (a dark frame when none came yet), redrawn whenever the text changes (the reconnection countdown
ticks each second). Viewers of the MJPEG stream alone (a browser, VLC, a home-automation camera card) see the
state too, not a silently frozen picture."""
from __future__ import annotations

import numpy as np

from realtime.view.render import draw_banner
from realtime.view.stream_status import STATE_COLOURS, state_text


class StateOverlay:
    def __init__(self, board, captures):
        """``board``: the view's ``FrameBoard``; ``captures``: the pipeline's ``Capture`` threads."""
        self.board, self.captures = board, list(captures)
        self.clean: list[np.ndarray | None] = [None] * len(self.captures)  # newest frame without a banner
        self.shown: list[str | None] = [None] * len(self.captures)  # text of the banner on the board, if any

    def add(self, capture) -> None:
        self.clean.append(None)
        self.shown.append(None)
        self.captures.append(capture)

    def frame(self, stream: int, image: np.ndarray) -> None:
        """A new annotated frame: shown as it is while its source runs; results still on their way after the
        source dropped (queued before it did) keep the banner on."""
        self.clean[stream], self.shown[stream] = image, None
        if self.captures[stream].state == "running":
            self.board.update(stream, image)
        else:
            self._banner(stream)

    def tick(self) -> None:
        """Draws (or redraws) the banner of each stream that is not running."""
        for i, capture in enumerate(self.captures):
            if capture.state != "running":
                self._banner(i)

    def _banner(self, i: int) -> None:
        capture = self.captures[i]
        text = state_text(capture)
        if text != self.shown[i]:
            self.board.update(i, draw_banner(self.clean[i], text, STATE_COLOURS.get(capture.state, (97, 97, 97))))
            self.shown[i] = text
