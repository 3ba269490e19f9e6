"""A miniature of the real `cats_vs_dogs` download, for TFDS' own builder to prepare offline.

The real archive (`kagglecatsanddogs_5340.zip`, 825 MB) holds
`PetImages/Cat/N.jpg` and `PetImages/Dog/N.jpg` plus a few other files
(`readme[1].txt`, a licence PDF, `Thumbs.db`), and 1,738 `.jpg` files that
are not JFIF JPEGs. TFDS' builder drops those and insists on finding exactly
1,738 of them, so the miniature has that many too (a few bytes each: the zip
stays under 300 KB), beside a handful of real JPEGs per class.

`stage_download` puts the miniature where TFDS' download manager keeps a
finished download of that URL (`DATA_DIR/downloads/cats_vs_dogs/`, named by
the registered checksum, with its `.INFO` file), so `tfds.load` finds it in
its download cache and prepares it with the real builder, without network.
"""

import io
import pathlib
import zipfile

import numpy as np
from PIL import Image

from conftest import synthetic_photo

#: What TFDS' cats_vs_dogs builder expects to drop (its `_NUM_CORRUPT_IMAGES`).
NON_JFIF_FILES = 1738


def jfif_jpeg(label, rng, size=(40, 48)):
    buffer = io.BytesIO()
    Image.fromarray(synthetic_photo(label, rng, size)).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    assert data[6:10] == b"JFIF"
    return data


def non_jfif_files(rng):
    """1,738 (name, bytes) under PetImages/ that the builder must drop."""
    png = io.BytesIO()
    Image.fromarray(synthetic_photo(0, rng, (8, 8))).save(png, format="PNG")
    kinds = [png.getvalue(), b"", b"GIF89a\x01\x00\x01\x00", b"<html>not an image</html>", b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00"]
    files = []
    for i in range(NON_JFIF_FILES):
        folder = "Cat" if i % 2 == 0 else "Dog"
        files.append((f"PetImages/{folder}/{10000 + i}.jpg", kinds[i % len(kinds)]))
    return files


def write_archive(path, per_class=10, seed=0):
    """The miniature zip at `path`; returns {"cat": [names], "dog": [names]} of the good photos."""
    rng = np.random.default_rng(seed)
    good = {"cat": [], "dog": []}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("readme[1].txt", "Cats and dogs (miniature for tests)\n")
        archive.writestr("CDLA-Permissive-2.0.pdf", b"%PDF-1.4 placeholder\n")
        for label, folder in enumerate(("Cat", "Dog")):
            archive.writestr(f"PetImages/{folder}/Thumbs.db", b"\x00" * 16)
            for i in range(per_class):
                name = f"PetImages/{folder}/{i}.jpg"
                archive.writestr(name, jfif_jpeg(label, rng))
                good[folder.lower()].append(name)
        for name, data in non_jfif_files(rng):
            archive.writestr(name, data)
    return good


def stage_download(data_dir, per_class=10, seed=0):
    """Write the miniature into TFDS' download cache under `data_dir`; returns the good photos."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import resource

    builder_class = tfds.builder_cls("cats_vs_dogs")
    [(url, info)] = builder_class.url_infos.items()
    folder = pathlib.Path(data_dir) / "downloads" / "cats_vs_dogs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / resource.get_dl_fname(url, info.checksum)
    good = write_archive(path, per_class, seed)
    resource.write_info_file(
        url=url, path=path, dataset_name="cats_vs_dogs", original_fname=info.filename, url_info=info
    )
    return good
