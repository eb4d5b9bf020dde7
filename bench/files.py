"""Files the bench mail carries: small valid PNG and PDF attachments, generated from a seeded
random source (bench/ingest.py and bench/peer.py)."""

from __future__ import annotations

import random
import struct
import zlib


def png(width: int, height: int, rng: random.Random) -> bytes:
    """A valid truecolour PNG of noise (so it does not compress): about width*height*3 bytes."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def pdf(title: str, rng: random.Random) -> bytes:
    """A small one-page PDF (a few KB), enough for content sniffing and storage."""
    padding = rng.randbytes(2048).hex()
    stream = f"BT /F1 12 Tf 72 720 Td ({title}) Tj ET\n% {padding}\n".encode("latin-1")
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >> endobj\n"
        + f"4 0 obj << /Length {len(stream)} >> stream\n".encode()
        + stream
        + b"endstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
