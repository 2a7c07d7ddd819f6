"""``redis://[:password@]host[:port][/db][?stream=KEY&maxlen=N]``: Redis Streams through redis-py.

Each message is one entry ``XADD KEY MAXLEN ~ N * type <kind> stream <name> message <json>`` (a batch is one
pipelined round trip). ``KEY`` may hold ``{stream}``, replaced by the stream's name; the default ``qem:{stream}``
gives one Redis stream per camera (``stream=qem`` puts every camera in one). ``MAXLEN ~ N`` (default 10000) trims
approximately, the cheap form Redis recommends. A stream's state (running, reconnecting, ended, ...) is the string
key ``<KEY>:state``. Default port 6379, database 0.
"""
from __future__ import annotations

from realtime.publish.base import Message, SendFailed, Transport


class RedisTransport(Transport):
    def __init__(self, name: str, host: str, port: int, db: int, key: str = "qem:{stream}", maxlen: int = 10000,
                 username: str | None = None, password: str | None = None, timeout: float = 5.0):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.name, self.key, self.maxlen = name, key, maxlen
        self.client = redis.Redis(host=host, port=port, db=db, username=username, password=password,
                                  socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
                                  health_check_interval=0)
        self.errors = (redis.ConnectionError, redis.TimeoutError, OSError)

    def _key(self, stream: str) -> str:
        return self.key.replace("{stream}", stream)

    def connect(self) -> None:
        self.client.connection_pool.disconnect()
        self.client.ping()

    def set_state(self, stream: str, state: str) -> None:
        self.client.set(self._key(stream) + ":state", state)

    def send(self, batch: list[Message]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for m in batch:
            pipe.xadd(self._key(m.stream), {"type": m.kind, "stream": m.stream, "message": m.payload},
                      maxlen=self.maxlen, approximate=True)
        try:
            pipe.execute()
        except self.errors as exc:
            # A pipeline that broke mid-way cannot say which entries arrived: all are sent again (at least once).
            raise SendFailed(str(exc) or type(exc).__name__, batch) from None

    def close(self) -> None:
        self.client.connection_pool.disconnect()
