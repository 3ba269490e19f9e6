"""A photo folder as messy as real ones, generated on the spot (no binaries in git).

`write_messy_folder` writes good synthetic photos plus one file (or link, or
folder) per kind of trouble, and returns what catdog should make of each
entry: `("tf" | "pil", check)` for a usable image, where `check(pixels)`
tests its 32x32 decoded pixels, or `("skip", reason fragment)`.
"""

import os
import struct
import zlib

import numpy as np
from PIL import Image

from conftest import write_photo_folder

RED, BLUE = (230, 20, 20), (20, 20, 230)


def png16(path, rgb16):
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), written by hand."""
    height, width, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    with open(path, "wb") as handle:
        handle.write(
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
        )


def halves(width, height, first, second):
    """Left half `first`, right half `second`."""
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:, : width // 2] = first
    pixels[:, width // 2 :] = second
    return Image.fromarray(pixels)


def is_colour(pixels, colour, tolerance=40):
    return np.abs(pixels.reshape(-1, 3).mean(0) - np.array(colour)).max() < tolerance


def reddish(pixels):
    mean = pixels.reshape(-1, 3).mean(0)
    return mean[0] > mean[2] + 100


def rotated_to_portrait(pixels):
    """The EXIF-6 photo displayed: red on top, blue at the bottom."""
    top, bottom = pixels[:8].reshape(-1, 3).mean(0), pixels[-8:].reshape(-1, 3).mean(0)
    return top[0] > top[2] + 100 and bottom[2] > bottom[0] + 100


def grey(pixels):
    return np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2])


def anything(pixels):
    return True


def write_messy_folder(root, per_class=6, seed=0, unreadable=True):
    """Good photos and every kind of trouble under `root`; returns expectations.

    Keys of the returned dict are paths relative to `root`.
    """
    root = write_photo_folder(root, per_class=per_class, seed=seed)
    cats, dogs = root / "cats", root / "dogs"
    expect = {
        os.path.relpath(p, root): ("tf", anything)
        for p in sorted(list(cats.iterdir()) + list(dogs.iterdir()))
    }
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir(exist_ok=True)

    def add(relative, verdict, check_or_reason=anything):
        expect[relative] = (verdict, check_or_reason)
        return root / relative

    good_jpeg = (cats / "cats.0.jpg").read_bytes()
    add("cats/empty.jpg", "skip", "empty file").write_bytes(b"")
    add("cats/truncated.jpg", "skip", "runcated").write_bytes(good_jpeg[: len(good_jpeg) // 2])
    add("cats/notes.jpg", "skip", "not an image").write_text("just some notes, saved as .jpg\n")
    add("dogs/page.jpg", "skip", "not an image").write_text("<!DOCTYPE html><html><body>404</body></html>")

    Image.new("RGBA", (24, 18), (255, 0, 0, 0)).save(add("cats/transparent.png", "pil", lambda p: p.min() == 255))
    Image.new("RGB", (30, 20), RED).convert("P").save(add("cats/palette.gif", "tf", reddish))
    frames = [Image.new("RGB", (20, 20), c).convert("P") for c in (RED, BLUE, BLUE)]
    frames[0].save(add("dogs/animated.gif", "pil", reddish), save_all=True, append_images=frames[1:], duration=50)
    Image.new("RGB", (17, 9), RED).save(add("cats/bitmap.bmp", "tf", lambda p: is_colour(p, RED, 2)))
    Image.new("RGB", (30, 22), BLUE).save(add("dogs/photo.webp", "pil", lambda p: is_colour(p, BLUE)))
    Image.fromarray(np.full((12, 16), 32768, np.uint16)).save(add("dogs/deep-grey16.png", "pil", lambda p: grey(p) and abs(int(p[0, 0, 0]) - 128) <= 1))
    png16(add("dogs/deep-rgb16.png", "tf", lambda p: is_colour(p, (255, 128, 0), 2)), np.tile(np.array([0xFF00, 0x8000, 0x00FF], np.uint16), (10, 14, 1)))
    Image.new("L", (26, 20), 90).save(add("cats/grey.jpg", "tf", grey))
    Image.new("RGB", (26, 20), RED).convert("CMYK").save(add("cats/cmyk.jpg", "pil", reddish))
    rotated = halves(40, 20, RED, BLUE)
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rotated.save(add("dogs/rotated.jpg", "pil", rotated_to_portrait), exif=exif, quality=95)
    Image.new("RGB", (1, 1), BLUE).save(add("dogs/dot.png", "tf", lambda p: is_colour(p, BLUE, 2)))

    add("cats/.DS_Store", "skip", "hidden").write_bytes(b"\x00\x00\x00\x01Bud1")
    Image.new("RGB", (20, 20), RED).save(add("cats/.hidden-photo.jpg", "skip", "hidden"))
    (cats / "album" / "2019").mkdir(parents=True)
    Image.new("RGB", (20, 20), RED).save(add("cats/album/2019/nested.jpg", "tf", reddish))

    Image.new("RGB", (20, 20), RED).save(outside / "linked.jpg")
    os.symlink(outside / "linked.jpg", add("cats/link-to-file.jpg", "tf", reddish))
    os.symlink(outside / "gone.jpg", add("cats/dangling.jpg", "skip", "broken symbolic link"))
    (outside / "more-dogs").mkdir(exist_ok=True)
    Image.new("RGB", (20, 20), BLUE).save(outside / "more-dogs" / "linked-dog.jpg")
    os.symlink(outside / "more-dogs", dogs / "link-to-folder")
    add("dogs/link-to-folder/linked-dog.jpg", "tf", lambda p: is_colour(p, BLUE, 10))
    os.symlink("..", add("dogs/loop", "skip", "symbolic link loop"))
    os.symlink(".", add("cats/album/self", "skip", "already visited"))
    os.mkfifo(add("cats/pipe.jpg", "skip", "named pipe"))
    (root / "horses").mkdir()
    Image.new("RGB", (20, 20)).save(root / "horses" / "horse.jpg")
    add("horses", "skip", "not cat(s)/ or dog(s)/")

    if unreadable:
        locked = add("dogs/locked.jpg", "tf", lambda p: is_colour(p, BLUE, 10))
        Image.new("RGB", (20, 20), BLUE).save(locked)
        os.chmod(locked, 0)
        if not can_read(locked):
            expect["dogs/locked.jpg"] = ("skip", "permission denied")
    return root, expect


def can_read(path):
    """Whether this process can read `path` (root can, whatever its mode)."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        return True
    except PermissionError:
        return False
