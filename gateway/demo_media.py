"""Files the demo's customers send, made at run time with the standard library (pure, no I/O).

A recorded call and a voice note need audio a browser can play, and a photo
needs real image bytes: the media worker stores them and checks their sha256
like any provider's. Nothing here pretends to be speech; a tone with a
syllable-like envelope just sounds like *something* in the player.
"""

from __future__ import annotations

import functools
import io
import math
import random
import struct
import wave
import zlib

SAMPLE_RATE = 8000  # what Asterisk records a narrowband call at


def voice_wav(seconds: float, *, seed: int = 0, pitch: float = 180.0) -> bytes:
    """A mono 16-bit WAV of ``seconds``: short "syllables" of varying pitch, with pauses."""
    rng = random.Random(seed)
    frames = bytearray()
    total = int(seconds * SAMPLE_RATE)
    phase = 0.0
    while len(frames) < total * 2:
        syllable = int(rng.uniform(0.12, 0.3) * SAMPLE_RATE)
        pause = int(rng.choice((0.04, 0.06, 0.25)) * SAMPLE_RATE)
        freq = pitch * rng.uniform(0.8, 1.3)
        for i in range(syllable):
            envelope = math.sin(math.pi * i / syllable)
            phase += 2 * math.pi * freq / SAMPLE_RATE
            sample = envelope * (0.6 * math.sin(phase) + 0.25 * math.sin(2 * phase) + 0.1 * math.sin(3 * phase))
            frames += struct.pack("<h", int(sample * 9000))
        frames += b"\x00\x00" * pause
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(bytes(frames[: total * 2]))
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@functools.cache
def parcel_png(width: int = 160, height: int = 120) -> bytes:
    """A small RGB PNG: a cardboard box with tape and a dented corner, on a floor."""
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # filter: none
        for x in range(width):
            color = (222, 218, 210) if y < height * 0.7 else (150, 120, 90)  # wall, floor
            in_box = 30 <= x < 130 and 25 <= y < 100
            dent = x + y < 30 + 25 + 22  # the box's top-left corner pushed in
            if in_box and not dent:
                color = (196, 154, 108)
                if 74 <= x < 86:
                    color = (170, 140, 80)  # tape
                elif (x + 2 * y) % 37 == 0:
                    color = (176, 136, 92)  # creases
            row += bytes(color)
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + _chunk(b"IEND", b""))
