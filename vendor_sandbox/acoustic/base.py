"""What every part of the Acoustic sandbox api shares: the state they all read, the calls one part
makes into another, and the JSON answer; `AcousticApi` puts the parts together."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from vendor_sandbox.acoustic.data import AcousticDataset
from vendor_sandbox.acoustic.faults import AcousticFaults

UTC = timezone.utc
MAX_BODY_BYTES = 1_000_000


class AcousticState:
    """The org every part serves: its data, files, fault switches, clock and lock."""

    def __init__(
        self,
        dataset: AcousticDataset,
        files_root: Path,
        *,
        ftp_user_id: str,
        download_folder: str,
        clock: Callable[[], float],
    ) -> None:
        self.dataset = dataset
        self.files_root = Path(files_root)
        self.ftp_user_id = ftp_user_id
        self.download_folder = "/" + download_folder.strip("/")
        self.clock = clock
        self.faults = AcousticFaults()
        self._lock = threading.RLock()
        self.staging_dir = self.files_root.parent / f"{self.files_root.name}-acoustic-staging"

    @property
    def download_dir(self) -> Path:
        """The org admin's SFTP folder on disk."""
        return self.files_root / self.download_folder.strip("/")

    # -- calls into other parts (each part's module defines the real one)

    def definition_for(self, contact_source_id: str | None = None) -> dict[str, Any] | None:
        raise NotImplementedError

    def rotate_bex_files(self, until: datetime, *, write_partial: bool = True) -> list[str]:
        raise NotImplementedError

    def _authorized(self, request: Request) -> bool:
        raise NotImplementedError


def json_response(body: Any, status: int) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
