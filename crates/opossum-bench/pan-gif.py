"""Makes a 120-frame animated GIF from a real photograph, for the animated benchmarks: a camera
pan with a slow zoom across the corpus's harvesters.jpeg (1165x859), 480x320 frames at 25 fps,
looping for ever, each frame with its own 256-colour palette (Pillow's median cut, Floyd-Steinberg
dithering), as video clips turned into GIFs are. No 100+ frame GIF with a known licence is in the
corpus or the decoders' test suites, so one is made from a photo nobody here took.

Usage: python3 pan-gif.py CORPUS_PHOTOS_DIR OUT.gif
"""
import sys

from PIL import Image

FRAMES, WIDTH, HEIGHT = 120, 480, 320
photo = Image.open(f"{sys.argv[1]}/harvesters.jpeg").convert("RGB")
frames = []
for i in range(FRAMES):
    t = i / (FRAMES - 1)
    # The window shrinks from 90% to 60% of the photo's height while it moves left to right.
    h = photo.height * (0.9 - 0.3 * t)
    w = h * WIDTH / HEIGHT
    left = (photo.width - w) * t
    top = (photo.height - h) * (0.5 + 0.3 * (t - 0.5))
    window = photo.resize((WIDTH, HEIGHT), Image.LANCZOS, box=(left, top, left + w, top + h))
    frames.append(window.quantize(256, dither=Image.Dither.FLOYDSTEINBERG))
frames[0].save(sys.argv[2], save_all=True, append_images=frames[1:], duration=40, loop=0)
