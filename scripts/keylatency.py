"""Key press to changed pixel, through real windows under Xvfb (used by scripts/latency).

`target DISPLAY` runs on the server's display: a window over the whole screen, focused, that
switches between two colours at each key press, so that a key typed into a client shows as a
changed picture one round trip later. `measure DISPLAY WINDOW...` runs on the clients' display:
for each trial and each client window in turn it focuses the window, presses and releases a
key through XTEST (as a keyboard would), and polls one pixel at the window's centre until it
changes. It prints one line per window: the median and the 90th percentile in milliseconds,
and the trials that never changed within two seconds.

python-xlib speaks the X protocol itself: no toolkit, and a one-pixel GetImage costs a round
trip of well under a millisecond, which is the resolution of the measurement.
"""

import argparse
import statistics
import time

from Xlib import X, XK, display, error
from Xlib.ext import xtest

COLOURS = (0x203C60, 0xE0C040)
GIVE_UP_S = 2.0


def target(name):
    d = display.Display(name)
    screen = d.screen()
    window = screen.root.create_window(
        0, 0, screen.width_in_pixels, screen.height_in_pixels, 0, screen.root_depth,
        background_pixel=COLOURS[0], override_redirect=True, event_mask=X.KeyPressMask,
    )
    window.map()
    window.set_input_focus(X.RevertToParent, X.CurrentTime)
    d.sync()
    presses = 0
    while True:
        try:
            event = d.next_event()
        except error.ConnectionClosedError:
            return  # the display was shut down: the run is over
        if event.type == X.KeyPress:
            presses += 1
            window.change_attributes(background_pixel=COLOURS[presses % 2])
            window.clear_area()
            d.flush()


def centre_pixel(d, window):
    geometry = window.get_geometry()
    origin = d.screen().root.translate_coords(window, 0, 0)
    x, y = origin.x + geometry.width // 2, origin.y + geometry.height // 2
    return lambda: d.screen().root.get_image(x, y, 1, 1, X.ZPixmap, 0xFFFFFFFF).data


def measure(name, windows, trials):
    d = display.Display(name)
    keycode = d.keysym_to_keycode(XK.string_to_keysym("a"))
    clients = [(w, d.create_resource_object("window", w)) for w in windows]
    clients = [(w, window, centre_pixel(d, window)) for w, window in clients]
    times = {w: [] for w in windows}
    missed = {w: 0 for w in windows}
    for _ in range(trials):
        for w, window, pixel in clients:
            window.set_input_focus(X.RevertToParent, X.CurrentTime)
            d.sync()
            time.sleep(0.4)  # focus settles, and the last trial's frames are through
            before = pixel()
            started = time.perf_counter()
            xtest.fake_input(d, X.KeyPress, keycode)
            xtest.fake_input(d, X.KeyRelease, keycode)
            d.sync()
            while pixel() == before:
                if time.perf_counter() - started > GIVE_UP_S:
                    missed[w] += 1
                    break
            else:
                times[w].append((time.perf_counter() - started) * 1000)
    for w in windows:
        ms = sorted(times[w])
        if ms:
            p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
            print(f"{w} {statistics.median(ms):.1f} {p90:.1f} {missed[w]}")
        else:
            print(f"{w} - - {missed[w]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("target")
    t.add_argument("display")
    m = sub.add_parser("measure")
    m.add_argument("display")
    m.add_argument("windows", nargs="+", type=lambda s: int(s, 0))
    m.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    if args.command == "target":
        target(args.display)
    else:
        measure(args.display, args.windows, args.trials)


if __name__ == "__main__":
    main()
