"""Draws images/icon.png (128x128, the Marketplace's size) with the standard library only.

Two nodes joined by a slack line, a tether, on a rounded teal square. Shapes are signed distance
functions, sampled 4x4 per pixel for anti-aliasing. Run: python3 scripts/make-icon.py
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

SIZE = 128
SUB = 4
TOP = (20, 128, 120)  # teal, top of the gradient
BOTTOM = (12, 74, 84)  # darker teal, bottom
INK = (255, 255, 255)
ACCENT = (253, 186, 116)  # the agent's node


def rounded_rect(x: float, y: float) -> float:
    half, radius = SIZE / 2 - 2, 26.0
    qx, qy = abs(x - SIZE / 2) - (half - radius), abs(y - SIZE / 2) - (half - radius)
    outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
    return outside + min(max(qx, qy), 0.0) - radius


def circle(x: float, y: float, cx: float, cy: float, r: float) -> float:
    return math.hypot(x - cx, y - cy) - r


def ring(x: float, y: float, cx: float, cy: float, r: float, width: float) -> float:
    return abs(math.hypot(x - cx, y - cy) - r) - width / 2


# The tether: a quadratic Bezier sagging between the two nodes, as a polyline.
P0, P1, P2 = (42.0, 46.0), (52.0, 104.0), (88.0, 84.0)
CURVE = [
    (
        (1 - t) ** 2 * P0[0] + 2 * (1 - t) * t * P1[0] + t * t * P2[0],
        (1 - t) ** 2 * P0[1] + 2 * (1 - t) * t * P1[1] + t * t * P2[1],
    )
    for t in (i / 48 for i in range(49))
]


def segment(x: float, y: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    ax, ay = x - a[0], y - a[1]
    bx, by = b[0] - a[0], b[1] - a[1]
    h = max(0.0, min(1.0, (ax * bx + ay * by) / (bx * bx + by * by)))
    return math.hypot(ax - bx * h, ay - by * h)


def tether(x: float, y: float) -> float:
    return min(segment(x, y, CURVE[i], CURVE[i + 1]) for i in range(len(CURVE) - 1)) - 4.5


def sample(x: float, y: float) -> tuple[float, float, float, float]:
    if rounded_rect(x, y) > 0:
        return (0.0, 0.0, 0.0, 0.0)
    t = y / SIZE
    color = tuple(TOP[i] * (1 - t) + BOTTOM[i] * t for i in range(3))
    if circle(x, y, 88, 84, 15) <= 0:
        color = ACCENT
    elif tether(x, y) <= 0 or circle(x, y, 42, 46, 11) <= 0 or ring(x, y, 42, 46, 22, 7) <= 0:
        color = INK
    return (*color, 255.0)


def main() -> None:
    rows = []
    for py in range(SIZE):
        row = bytearray([0])  # filter: none
        for px in range(SIZE):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(SUB):
                for sx in range(SUB):
                    r, g, b, a = sample(px + (sx + 0.5) / SUB, py + (sy + 0.5) / SUB)
                    acc = [acc[0] + r * a, acc[1] + g * a, acc[2] + b * a, acc[3] + a]
            alpha = acc[3] / (SUB * SUB)
            rgb = [round(c / acc[3]) if acc[3] else 0 for c in acc[:3]]
            row += bytes([*rgb, round(alpha)])
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
    png += chunk(b"IEND", b"")
    out = Path(__file__).resolve().parent.parent / "images" / "icon.png"
    out.write_bytes(png)
    print(f"wrote {out} ({len(png)} bytes)")


if __name__ == "__main__":
    main()
