"""kombu's filesystem transport, with messages that appear whole.

The demo's embedded broker. kombu's own ``filesystem`` transport creates a message file and
only then locks and writes it; a worker that lists the folder in between takes the empty
file, fails to decode it and stops consuming (celery/kombu#1551). Here each message is
written under a staging folder on the same filesystem and renamed into the queue folder,
so a consumer only ever sees complete messages.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

STAGING_FOLDER = ".staging"  # skipped by the consumer: its name is not "<n>.<queue>.msg"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        # The same name as kombu's: ordered by time, then unique, then the queue.
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        staging = os.path.join(self.data_folder_out, STAGING_FOLDER)
        try:
            os.makedirs(staging, exist_ok=True)
            with open(os.path.join(staging, name), "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(os.path.join(staging, name), os.path.join(self.data_folder_out, name))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
