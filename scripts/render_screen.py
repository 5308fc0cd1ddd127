#!/usr/bin/env python3
"""Renders a terminal capture with ANSI colours (`tmux capture-pane -e -p`) to a PNG.

    render_screen.py CAPTURE.ans OUT.png [--cols 140] [--rows 40] [--light] [--size 15]

The capture is interpreted by pyte (a VT100/xterm emulator) and each cell is painted with
Pillow: background, then the glyph in DejaVu Sans Mono (bold face for bold cells). Box-drawing
and block characters are drawn as lines and rectangles rather than glyphs, so borders join
across cells and sparklines and gauges fill their cells exactly. --light paints the terminal's
default colours dark-on-light (for light themes, which leave the background to the terminal).
Needs python3-pyte and python3-pil (scripts/screenshots.sh installs them).
"""

import argparse
import unicodedata

import pyte
import pyte.graphics as g
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu/"

# the 16 ANSI colours (Tango), by pyte's names; "b" prefix = the bright (90-97) variant
PALETTE = {
    "black": "#2e3436", "red": "#cc0000", "green": "#4e9a06", "brown": "#c4a000",
    "blue": "#3465a4", "magenta": "#75507b", "cyan": "#06989a", "white": "#d3d7cf",
    "bblack": "#555753", "bred": "#ef2929", "bgreen": "#8ae234", "bbrown": "#fce94f",
    "bblue": "#729fcf", "bmagenta": "#ad7fa8", "bcyan": "#34e2e2", "bwhite": "#eeeeec",
}
DEFAULTS = {False: ("#d3d7cf", "#1c1f22"), True: ("#24292f", "#fbfbfa")}


NAMES = ["black", "red", "green", "brown", "blue", "magenta", "cyan", "white"]


class Screen(pyte.Screen):
    """pyte folds the bright colours (SGR 90-97, 100-107) into bold + the normal colour, and
    gives 256-colour indices 0-15 (which crossterm writes for named colours: `38;5;4`) as xterm's
    fixed values; keep both as palette names, so the palette above decides and bright and bold
    each look as a terminal shows them."""

    def select_graphic_rendition(self, *attrs):
        attrs = list(attrs)
        rest = []

        def flush():
            if rest:
                super(Screen, self).select_graphic_rendition(*rest)
                rest.clear()

        def put(key, value):
            flush()
            self.cursor.attrs = self.cursor.attrs._replace(**{key: value})

        if not attrs:
            super().select_graphic_rendition()
            return
        i = 0
        while i < len(attrs):
            a = attrs[i]
            if 90 <= a <= 97:
                put("fg", "b" + NAMES[a - 90])
            elif 100 <= a <= 107:
                put("bg", "b" + NAMES[a - 100])
            elif a in (38, 48) and i + 2 < len(attrs) and attrs[i + 1] == 5 and attrs[i + 2] < 16:
                n = attrs[i + 2]
                put("fg" if a == 38 else "bg", ("b" if n >= 8 else "") + NAMES[n % 8])
                i += 2
            elif a in (38, 48) and i + 1 < len(attrs) and attrs[i + 1] in (2, 5):
                # pass the whole extended colour through in one piece
                k = 5 if attrs[i + 1] == 2 else 3
                flush()
                super().select_graphic_rendition(*attrs[i:i + k])
                i += k - 1
            else:
                rest.append(a)
            i += 1
        flush()


def colour(name, default):
    if name == "default":
        return default
    if name in PALETTE:
        return PALETTE[name]
    if len(name) == 6:  # pyte gives 256-colour and 24-bit colours as rrggbb
        return "#" + name
    return default


def box_arms(ch):
    """(up, down, left, right) weights (0 none, 1 light, 2 heavy, 3 double) of a box-drawing
    character, from its Unicode name; None if it is not a simple line character."""
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return None
    if not name.startswith("BOX DRAWINGS "):
        return None
    words = name[len("BOX DRAWINGS "):].split()
    arms = {"UP": 0, "DOWN": 0, "LEFT": 0, "RIGHT": 0}
    weight = 1
    for w in words:
        if w in ("LIGHT", "ARC"):
            weight = 1 if w == "LIGHT" else weight
        elif w == "HEAVY":
            weight = 2
        elif w == "DOUBLE":
            weight = 3
        elif w == "HORIZONTAL":
            arms["LEFT"] = arms["RIGHT"] = weight
        elif w == "VERTICAL":
            arms["UP"] = arms["DOWN"] = weight
        elif w in arms:
            arms[w] = weight
        elif w in ("AND", "SINGLE", "TRIPLE", "QUADRUPLE", "DOUBLE", "DASH"):
            continue
        else:
            return None
    # "LIGHT DOWN AND RIGHT": the weight word comes first and applies to all arms after it
    if not any(arms.values()):
        return None
    return arms["UP"], arms["DOWN"], arms["LEFT"], arms["RIGHT"]


def draw_box(d, x, y, w, h, arms, fg):
    up, down, left, right = arms
    cx, cy = x + w // 2, y + h // 2
    lw = max(1, w // 9)

    def seg(x0, y0, x1, y1, weight):
        if not weight:
            return
        t = lw * 2 if weight == 2 else lw
        if weight == 3:  # double: two thin lines either side of the centre
            off = max(2, lw + 1)
            if x0 == x1:
                d.rectangle([x0 - off, y0, x0 - off + lw - 1, y1], fill=fg)
                d.rectangle([x0 + off, y0, x0 + off + lw - 1, y1], fill=fg)
            else:
                d.rectangle([x0, y0 - off, x1, y0 - off + lw - 1], fill=fg)
                d.rectangle([x0, y0 + off, x1, y0 + off + lw - 1], fill=fg)
            return
        if x0 == x1:
            d.rectangle([x0 - t // 2, y0, x0 - t // 2 + t - 1, y1], fill=fg)
        else:
            d.rectangle([x0, y0 - t // 2, x1, y0 - t // 2 + t - 1], fill=fg)

    seg(cx, y, cx, cy, up)
    seg(cx, cy, cx, y + h - 1, down)
    seg(x, cy, cx, cy, left)
    seg(cx, cy, x + w - 1, cy, right)


def draw_block(d, x, y, w, h, ch, fg, bg):
    """Block elements U+2580..U+259F; True if drawn."""
    o = ord(ch)
    if o == 0x2580:  # upper half
        d.rectangle([x, y, x + w - 1, y + h // 2 - 1], fill=fg)
    elif 0x2581 <= o <= 0x2588:  # lower 1/8 .. full
        n = o - 0x2580
        top = y + h - round(h * n / 8)
        if top < y + h:
            d.rectangle([x, top, x + w - 1, y + h - 1], fill=fg)
    elif 0x2589 <= o <= 0x258F:  # left 7/8 .. 1/8
        n = 0x2590 - o
        right = x + round(w * n / 8)
        d.rectangle([x, y, right - 1, y + h - 1], fill=fg)
    elif o == 0x2590:  # right half
        d.rectangle([x + w // 2, y, x + w - 1, y + h - 1], fill=fg)
    elif o in (0x2591, 0x2592, 0x2593):  # shades: blend fg into bg
        a = {0x2591: 0.25, 0x2592: 0.5, 0x2593: 0.75}[o]
        fr, fg_, fb = Image.new("RGB", (1, 1), fg).getpixel((0, 0))
        br, bg_, bb = Image.new("RGB", (1, 1), bg).getpixel((0, 0))
        mix = (round(br + (fr - br) * a), round(bg_ + (fg_ - bg_) * a), round(bb + (fb - bb) * a))
        d.rectangle([x, y, x + w - 1, y + h - 1], fill=mix)
    elif o == 0x2594:  # upper 1/8
        d.rectangle([x, y, x + w - 1, y + max(1, h // 8) - 1], fill=fg)
    elif o == 0x2595:  # right 1/8
        d.rectangle([x + w - max(1, w // 8), y, x + w - 1, y + h - 1], fill=fg)
    else:
        return False
    return True


def render(text, out, cols, rows, light, size):
    screen = Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    lines = text.replace(b"\r\n", b"\n").split(b"\n")
    for i, line in enumerate(lines[:rows]):
        # each captured line is placed explicitly, so a line never scrolls the screen
        stream.feed(b"\x1b[%d;1H" % (i + 1) + line)

    regular = ImageFont.truetype(FONT_DIR + "DejaVuSansMono.ttf", size)
    bold = ImageFont.truetype(FONT_DIR + "DejaVuSansMono-Bold.ttf", size)
    ascent, descent = regular.getmetrics()
    cw = round(regular.getlength("M"))
    ch = ascent + descent + 2
    pad = 12
    dfg, dbg = DEFAULTS[light]
    img = Image.new("RGB", (cols * cw + 2 * pad, rows * ch + 2 * pad), dbg)
    d = ImageDraw.Draw(img)
    for y in range(rows):
        row = screen.buffer[y]
        for x in range(cols):
            c = row[x]
            fg = colour(c.fg, dfg)
            bg = colour(c.bg, dbg)
            if c.reverse:
                fg, bg = bg, fg
            px, py = pad + x * cw, pad + y * ch
            if bg != dbg:
                d.rectangle([px, py, px + cw - 1, py + ch - 1], fill=bg)
            glyph = c.data
            if not glyph or glyph == " ":
                continue
            arms = box_arms(glyph) if len(glyph) == 1 else None
            if arms:
                draw_box(d, px, py, cw, ch, arms, fg)
                continue
            if len(glyph) == 1 and draw_block(d, px, py, cw, ch, glyph, fg, bg):
                continue
            d.text((px, py + 1), glyph, font=bold if c.bold else regular, fill=fg)
            if c.underscore:
                d.line([px, py + ch - 2, px + cw - 1, py + ch - 2], fill=fg)
    img.save(out, optimize=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("out")
    ap.add_argument("--cols", type=int, default=140)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--light", action="store_true")
    ap.add_argument("--size", type=int, default=15)
    a = ap.parse_args()
    with open(a.capture, "rb") as f:
        text = f.read()
    render(text, a.out, a.cols, a.rows, a.light, a.size)


if __name__ == "__main__":
    main()
