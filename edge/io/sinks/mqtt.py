"""MQTT: one JSON message per frame with faces, to a broker (paho-mqtt 2.x).

    mqtt://[user:pass@]host[:port]/topic[?qos=0|1&client_id=NAME&keepalive=S&buffer=N]
    mqtts://...[&ca=PATH&insecure=1]    TLS: port 8883, the system's CAs unless ca= (insecure=1: no checks)

Defaults: port 1883, qos 0 (MQTT's own: a message written to the network just before the link dies is
lost unseen; qos=1 has the broker confirm each and resends the unconfirmed after a reconnect), keepalive
15 s (a dead link is noticed within ~20 s and its messages kept from then on), buffer 1000 messages,
client id atpn-edge-<hostname>-<pid>. A password is never printed.
"""
from __future__ import annotations

import json
import os
import re
import socket
import ssl
import sys
import threading
import time
from collections import deque
from typing import Deque, NamedTuple, Optional
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np
import paho.mqtt.client as mqtt

from edge.errors import ConfigError, without_password
from edge.io.sinks import FrameResult, SinkOptions, frame_record

OPTIONS = ("qos", "client_id", "keepalive", "buffer", "ca", "insecure")
EXAMPLE = "e.g. mqtt://broker.local:1883/atpn/faces?qos=1"
HAND_OVER = 8  # messages handed to paho per step while holding the lock: a write never waits for more


class Broker(NamedTuple):
    uri: str  # scheme://host:port/topic: no password, no options
    host: str
    port: int
    topic: str
    username: Optional[str]
    password: Optional[str]
    qos: int
    client_id: str
    keepalive: int
    buffer: int
    tls: bool
    ca: Optional[str]
    insecure: bool


def parse_target(target: str, flag: str) -> Broker:
    """The broker `target` names; a one-line ConfigError naming `flag`, the target (password hidden) and the fix."""
    shown = without_password(target)

    def bad(problem: str, fix: str = EXAMPLE) -> ConfigError:
        return ConfigError(f"{flag} {shown}: {problem}; {fix}")

    if "#" in target:
        raise bad("a topic to publish on cannot hold + or # (wildcards are for subscribers)",
                  "name one topic (percent-encode a # in a password as %23)")
    try:
        parts = urlsplit(target)
    except ValueError as exc:  # e.g. an IPv6 address without its closing bracket
        raise bad(f"not a valid URI ({exc})") from None
    tls = parts.scheme.lower() == "mqtts"
    try:
        port = parts.port if parts.port is not None else (8883 if tls else 1883)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise bad("the port is not a number from 1 to 65535")
    topic = unquote(parts.path[1:])
    if not parts.hostname:
        raise bad("no broker host")
    if not topic:
        raise bad("no topic", f"name one after the host, {EXAMPLE}")
    if "+" in topic:
        raise bad("a topic to publish on cannot hold + or # (wildcards are for subscribers)", "name one topic")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for key in query:
        if key not in OPTIONS or (key in ("ca", "insecure") and not tls):
            raise bad(f"unknown option {key}=" if key not in OPTIONS else f"{key}= is for mqtts:// (TLS)",
                      f"options are {'=, '.join(OPTIONS)}= (ca= and insecure= with mqtts:// only)")

    def number(key: str, default: int, low: int, high: int, allowed: str) -> int:
        text = query.get(key, str(default))
        if not re.fullmatch(r"[0-9]+", text) or not low <= int(text) <= high:
            raise bad(f"{key}={text} is not {allowed}", f"fix {key}= or leave it out (default {default})")
        return int(text)

    ca = query.get("ca") or None
    if ca is not None and not os.path.isfile(ca):
        raise bad(f"ca={ca} is not a file", "give the PEM file of the CA that signed the broker's certificate")
    client_id = query.get("client_id", f"atpn-edge-{socket.gethostname()}-{os.getpid()}")
    if not client_id:
        raise bad("client_id= is empty", "leave it out for atpn-edge-<hostname>-<pid>, or name one")
    host = parts.hostname
    shown_host = f"[{host}]" if ":" in host else host
    return Broker(uri=f"{parts.scheme.lower()}://{shown_host}:{port}/{topic}", host=host, port=port, topic=topic,
                  username=unquote(parts.username) if parts.username is not None else None,
                  password=unquote(parts.password) if parts.password is not None else None,
                  qos=number("qos", 0, 0, 1, "0 or 1"), client_id=client_id,
                  keepalive=number("keepalive", 15, 5, 65535, "seconds from 5 to 65535"),
                  buffer=number("buffer", 1000, 1, 1000000, "a number of messages from 1 to 1000000"),
                  tls=tls, ca=ca, insecure=bool(number("insecure", 0, 0, 1, "0 or 1")))


class MqttSink:
    """Publishes `frame_record` of each frame with faces, so a subscriber gets the same objects as the
    JSON-lines file, without a stream of empty frames (frames without faces send nothing).

    The camera loop never waits on the network: `write` appends to a bounded buffer and hands paho what it
    can take; paho's own thread connects (a broker away at start is not an error: boxes boot before the
    network), reconnects with backoff (1 to 30 s) and sends. While the broker is away, or holds `buffer`
    unconfirmed messages, messages wait in the buffer; when it is full the oldest is dropped. Every message
    is counted: `sent` (taken by paho), `delivered` (qos 1: confirmed by the broker; qos 0: written to the
    network), `dropped` (out of a full buffer, still buffered at close, or qos 0 ones paho discards with a
    lost link) or `buffered`."""

    wants_picture = False

    def __init__(self, target: str, options: SinkOptions = SinkOptions()) -> None:
        broker = parse_target(target, options.flag)
        self.uri, self.topic, self.qos = broker.uri, broker.topic, broker.qos
        self.messages = self.sent = self.delivered = self.dropped = 0
        self.capacity = broker.buffer
        self._queue: Deque[str] = deque(maxlen=broker.buffer)
        self._lock = threading.Lock()  # the queue, the counters but `delivered`, the connection state
        self._log = options.log
        self._connected = self._ever_connected = self._closed = self._full_said = False
        self._down_since: Optional[float] = None  # when the broker was reported away, for the "back" line
        self._dropped_then = 0
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=broker.client_id)
        if broker.username is not None:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            try:
                client.tls_set(ca_certs=broker.ca, cert_reqs=ssl.CERT_NONE if broker.insecure else None)
            except OSError as exc:  # ssl.SSLError too: a ca= file that holds no certificate
                raise ConfigError(f"{options.flag} {self.uri}: cannot set up TLS with ca={broker.ca} ({exc}); "
                                  "give the PEM file of the CA that signed the broker's certificate") from exc
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect, client.on_connect_fail = self._on_connect, self._on_connect_fail
        client.on_disconnect, client.on_publish = self._on_disconnect, self._on_publish
        client.connect_async(broker.host, broker.port, broker.keepalive)
        client.loop_start()
        self._client = client

    @property
    def buffered(self) -> int:
        return len(self._queue)

    def write(self, result: FrameResult, picture: Optional[np.ndarray] = None) -> bool:
        """Buffers the frame's message (if it has faces) and hands paho what it takes now: microseconds."""
        payload = json.dumps(frame_record(result)) if result.faces else None
        say = None
        with self._lock:
            if payload is not None:
                self.messages += 1
                if len(self._queue) == self.capacity:
                    self.dropped += 1
                    if not self._full_said:
                        self._full_said = True
                        say = (f"{self.uri}: buffer full ({self.capacity} messages); dropping the oldest "
                               "until the broker takes them")
                self._queue.append(payload)
            self._hand_over()  # also on frames without faces: a buffer left after a reconnect keeps draining
        if say:
            self._log(say)
        return True

    def _hand_over(self) -> bool:
        """Publishes up to HAND_OVER buffered messages, oldest first (the lock held); True if more may go now."""
        for _ in range(HAND_OVER):
            if not (self._connected and self._queue) or self.sent - self.delivered >= self.capacity:
                return False  # paho's own queue is unbounded: it never holds more than `buffer` unconfirmed
            rc = self._client.publish(self.topic, self._queue[0], self.qos).rc
            if rc != mqtt.MQTT_ERR_SUCCESS and not (rc == mqtt.MQTT_ERR_NO_CONN and self.qos):
                return False  # not taken (qos 0 on a link that just died): it stays for the reconnect
            self._queue.popleft()  # qos 1 without a link: paho keeps it and resends it on reconnecting
            self.sent += 1
        return True

    def _drain(self) -> None:
        """Hands over the whole buffer a few messages at a time, so `write` never waits long for the lock."""
        while True:
            with self._lock:
                if not self._hand_over():
                    return

    # paho's callbacks, on its thread. on_publish runs under paho's own lock, which `publish` takes under
    # ours: it must not take ours, and `delivered` is written there alone.
    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: object, properties: object) -> None:
        self.delivered += 1

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: mqtt.ReasonCode,
                    properties: object) -> None:
        if reason.is_failure:
            self._away(f"broker refused the connection ({reason})")
            return
        with self._lock:
            self._connected = True
            line = f"{self.uri}: {'reconnected' if self._ever_connected else 'connected'}"
            if self._down_since is not None:
                line += (f" after {time.monotonic() - self._down_since:.1f} s; "
                         f"{self.dropped - self._dropped_then} messages dropped meanwhile")
            self._ever_connected, self._down_since, self._full_said = True, None, False
        self._log(line)
        self._drain()

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        error = sys.exc_info()[1]  # paho calls this while it handles the attempt's OSError: say which
        self._away("cannot reach the broker" + (f" ({error})" if error else ""))

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                       properties: object) -> None:
        with self._lock:
            was_connected, self._connected = self._connected, False
        if was_connected:  # paho says "Unspecified error" for a connection that closed or broke
            self._away(f"broker lost ({'connection closed' if str(reason) == 'Unspecified error' else reason})")
        if self.qos == 0:  # what paho had not yet written it discards on reconnecting: dropped in this outage
            with self._lock:
                lost = self.sent - self.delivered
                self.sent, self.dropped = self.sent - lost, self.dropped + lost

    def _away(self, why: str) -> None:
        """Says once per outage that the broker is away and messages are kept meanwhile."""
        with self._lock:
            if self._down_since is not None or self._closed:
                return
            self._down_since, self._dropped_then = time.monotonic(), self.dropped
        self._log(f"{self.uri}: {why}; buffering up to {self.capacity} messages, retrying every 1-30 s")

    def close(self) -> None:
        """Gives a connected broker up to 2 s for what is left, then stops; what is still buffered is dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with self._lock:
                self._hand_over()
                pending = self._connected and (self._queue or self.delivered < self.sent)
            if not pending:
                break
            time.sleep(0.01)
        self._client.disconnect()
        stopper = threading.Thread(target=self._client.loop_stop, daemon=True)
        stopper.start()
        stopper.join(1.5)  # paho's thread may be stuck in a DNS lookup or connect: it is a daemon, leave it
        with self._lock:
            self.dropped += len(self._queue)
            self._queue.clear()
            unconfirmed = self.sent - self.delivered
        self._log(f"{self.uri}: {self.sent} messages sent, {self.delivered} delivered, {self.dropped} dropped"
                  + (f", {unconfirmed} unconfirmed" if unconfirmed > 0 else ""))
