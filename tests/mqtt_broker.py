"""A real Mosquitto broker for tests/test_mqtt.py, on a free 127.0.0.1 port, that can be stopped and started
again on the same port (a broker lost mid-run and back).

Sessions and their queued messages persist across a stop (persistence on; a SIGTERM saves them), so a
subscriber with a persistent session misses nothing the broker accepted, even while it reconnects.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on (also a broker that is not there)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MosquittoBroker:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.log = folder / "mosquitto.log"
        self.conf = folder / "mosquitto.conf"
        user = pwd.getpwuid(os.getuid()).pw_name  # as root mosquitto drops to user mosquitto, who cannot write here
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {folder}/\nuser {user}\n")
        self._process: Optional[subprocess.Popen] = None
        self.start()

    def start(self, timeout: float = 5.0) -> None:
        """Starts it and returns once the port accepts connections."""
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._process.returncode}: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s: {self.log.read_text()}")

    def stop(self) -> None:
        """Ends it (clients see their connections drop); a no-op when it is not running."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
