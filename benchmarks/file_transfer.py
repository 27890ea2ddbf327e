"""Download throughput of the tap's file transports against the sandbox's real servers.

    python benchmarks/file_transfer.py --megabytes 50 --runs 3

Times `FileSite.download` (SFTP with paramiko prefetch, plain FTP, explicit FTPS) on one random
file, beside a bare baseline for SFTP: paramiko's own `SFTPClient.get` on the same file, in the
same run. Prints min/median/max MB/s per transport.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import paramiko

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tap_emailtracking.transports.files import FileSiteSettings, open_file_site  # noqa: E402
from vendor_sandbox.sandbox import Sandbox  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xfer-bench-") as tmp:
        root = Path(tmp)
        with Sandbox(root / "sandbox") as box:
            size = args.megabytes * 1024 * 1024
            (box.files_root / "big.bin").write_bytes(os.urandom(size))
            creds = box.credentials
            ports = {"sftp": box.sftp.port, "ftp": box.ftp.port, "ftps": box.ftps.port}
            results: dict[str, list[float]] = {}
            for protocol, port in ports.items():
                settings = FileSiteSettings(
                    protocol=protocol,  # type: ignore[arg-type]
                    host="127.0.0.1",
                    port=port,
                    username=creds.file_username,
                    password=creds.file_password,
                    tls_ca_file=str(box.ftps.ca_file) if box.ftps.ca_file else None,
                    sftp_known_hosts_file=str(box.known_hosts),
                )
                for _ in range(args.runs):
                    target = root / f"{protocol}.bin"
                    with open_file_site(settings, vendor="bench") as site:
                        started = time.perf_counter()
                        site.download("big.bin", target)
                        elapsed = time.perf_counter() - started
                    assert target.stat().st_size == size
                    results.setdefault(f"tap {protocol}", []).append(size / elapsed / 1e6)
            for _ in range(args.runs):
                client = paramiko.SSHClient()
                client.load_host_keys(str(box.known_hosts))
                client.connect(
                    "127.0.0.1",
                    port=box.sftp.port,
                    username=creds.file_username,
                    password=creds.file_password,
                    look_for_keys=False,
                    allow_agent=False,
                )
                sftp = client.open_sftp()
                started = time.perf_counter()
                sftp.get("/big.bin", str(root / "bare.bin"))
                elapsed = time.perf_counter() - started
                client.close()
                results.setdefault("baseline paramiko get (sftp)", []).append(size / elapsed / 1e6)
    print(f"{args.megabytes} MB, {args.runs} runs each, MB/s (min / median / max)")
    for name, values in results.items():
        print(
            f"  {name:32s} {min(values):7.1f} / {statistics.median(values):7.1f} "
            f"/ {max(values):7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
