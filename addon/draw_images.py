"""Draw the add-on's icon.png (128x128) and logo.png (250x100) with the standard library only.

Run ``python addon/draw_images.py`` after changing a shape; the PNGs are committed, and
tests/test_addon.py checks that they are what this script draws. Shapes are sampled 4x4 per
pixel for smooth edges; the PNG is written with zlib and struct (no imaging dependency).
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

RGBA = tuple[int, int, int, int]
Box = tuple[float, float, float, float]
#: A shape: is (x, y) inside, its colour, and a box around it (to skip it quickly elsewhere).
Shape = tuple[Callable[[float, float], bool], RGBA, Box]

BLUE: RGBA = (24, 86, 160, 255)
WHITE: RGBA = (255, 255, 255, 255)
AMBER: RGBA = (255, 176, 32, 255)
SAMPLES = 4

# 5x7 glyphs for the logo's text, one string per row.
GLYPHS = {
    "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
    "0": [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
    "-": [".....", ".....", ".....", "#####", ".....", ".....", "....."],
    "K": ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"],
}


def png(width: int, height: int, pixels: Sequence[RGBA]) -> bytes:
    """An 8-bit RGBA PNG; rows use filter 0 so the bytes depend only on the pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        for r, g, b, a in pixels[y * width:(y + 1) * width]:
            raw += bytes((r, g, b, a))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))


def render(width: int, height: int, shapes: Sequence[Shape]) -> list[RGBA]:
    """Average the topmost shape's colour over SAMPLES x SAMPLES points per pixel."""
    out: list[RGBA] = []
    step = 1.0 / SAMPLES
    for y in range(height):
        for x in range(width):
            near = [(inside, colour) for inside, colour, (x0, y0, x1, y1) in reversed(shapes)
                    if x0 <= x + 1 and x <= x1 and y0 <= y + 1 and y <= y1]
            acc = [0, 0, 0, 0]
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    px, py = x + (sx + 0.5) * step, y + (sy + 0.5) * step
                    for inside, colour in near:
                        if inside(px, py):
                            a = colour[3]
                            acc[0] += colour[0] * a
                            acc[1] += colour[1] * a
                            acc[2] += colour[2] * a
                            acc[3] += a
                            break
            n = SAMPLES * SAMPLES
            alpha = acc[3] / n
            if alpha == 0:
                out.append((0, 0, 0, 0))
            else:
                out.append((round(acc[0] / acc[3]), round(acc[1] / acc[3]),
                            round(acc[2] / acc[3]), round(alpha)))
    return out


def rounded_rect(x0: float, y0: float, x1: float, y1: float, r: float
                 ) -> Callable[[float, float], bool]:
    def inside(x: float, y: float) -> bool:
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            return False
        cx = min(max(x, x0 + r), x1 - r)
        cy = min(max(y, y0 + r), y1 - r)
        return (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    return inside


def circle(cx: float, cy: float, r: float) -> Callable[[float, float], bool]:
    return lambda x, y: (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def polygon(points: Sequence[tuple[float, float]]) -> Callable[[float, float], bool]:
    def inside(x: float, y: float) -> bool:
        hit = False
        j = len(points) - 1
        for i, (xi, yi) in enumerate(points):
            xj, yj = points[j]
            if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                hit = not hit
            j = i
        return hit
    return inside


def meter_glyph(ox: float, oy: float, size: float) -> list[Shape]:
    """A dial with a lightning bolt, in a ``size`` square at (ox, oy)."""
    s = size / 128.0
    bolt = [(72, 22), (40, 70), (62, 70), (52, 106), (88, 54), (66, 54), (78, 22)]
    cx, cy = ox + 64 * s, oy + 64 * s
    points = [(ox + px * s, oy + py * s) for px, py in bolt]
    return [
        (rounded_rect(ox, oy, ox + size, oy + size, 26 * s), BLUE, (ox, oy, ox + size, oy + size)),
        (circle(cx, cy, 50 * s), WHITE, (cx - 50 * s, cy - 50 * s, cx + 50 * s, cy + 50 * s)),
        (circle(cx, cy, 43 * s), BLUE, (cx - 43 * s, cy - 43 * s, cx + 43 * s, cy + 43 * s)),
        (polygon(points), AMBER, (min(p[0] for p in points), min(p[1] for p in points),
                                  max(p[0] for p in points), max(p[1] for p in points))),
    ]


def text(ox: float, oy: float, scale: float, word: str) -> list[Shape]:
    shapes: list[Shape] = []
    for n, char in enumerate(word):
        for row, bits in enumerate(GLYPHS[char]):
            for col, bit in enumerate(bits):
                if bit == "#":
                    x = ox + (n * 6 + col) * scale
                    y = oy + row * scale
                    shapes.append((rounded_rect(x, y, x + scale, y + scale, scale * 0.2), BLUE,
                                   (x, y, x + scale, y + scale)))
    return shapes


def icon() -> bytes:
    return png(128, 128, render(128, 128, meter_glyph(0, 0, 128)))


def logo() -> bytes:
    shapes = meter_glyph(4, 4, 92) + text(106, 36, 4, "4000-K")
    return png(250, 100, render(250, 100, shapes))


def main(argv: Sequence[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "series4000"
    (folder / "icon.png").write_bytes(icon())
    (folder / "logo.png").write_bytes(logo())
    print(f"wrote {folder / 'icon.png'} and {folder / 'logo.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
