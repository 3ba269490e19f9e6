"""Find labelled image files in a folder with one sub-folder per class."""

import os
from dataclasses import dataclass, field

from catdog.errors import DataError

#: Label order shared with TFDS `cats_vs_dogs` and alphabetical folder order.
CLASS_NAMES = ("cat", "dog")
_FOLDER_LABELS = {"cat": 0, "cats": 0, "dog": 1, "dogs": 1}


def label_of_folder(name):
    """0 for cat/cats, 1 for dog/dogs (any case), None for anything else."""
    return _FOLDER_LABELS.get(name.lower())


@dataclass
class LabelledFiles:
    """Image candidates with their labels, and the folders that were ignored."""

    paths: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    ignored_folders: list = field(default_factory=list)

    def __len__(self):
        return len(self.paths)

    def counts(self):
        return {name: self.labels.count(i) for i, name in enumerate(CLASS_NAMES)}

    def subset(self, indices):
        return LabelledFiles(
            [self.paths[i] for i in indices],
            [self.labels[i] for i in indices],
            list(self.ignored_folders),
        )


def list_labelled_files(directory):
    """All non-hidden files under the cat(s)/dog(s) sub-folders, recursively.

    Every file is a candidate, whatever its extension: whether it is an image
    is for the decoder to say, and what it says is reported, not guessed.

    Raises:
        DataError: the folder does not exist or has no cat/dog sub-folders.
    """
    if not os.path.exists(directory):
        raise DataError(f"data folder not found: {directory}")
    if not os.path.isdir(directory):
        raise DataError(f"not a folder: {directory}")
    found = LabelledFiles()
    class_folders = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        label = label_of_folder(entry.name)
        if label is None:
            found.ignored_folders.append(entry.path)
        else:
            class_folders.append((entry.path, label))
    if not class_folders:
        raise DataError(
            f"{directory} has no class sub-folders: expected cat/ (or cats/) "
            "and dog/ (or dogs/), one image file per example"
        )
    for folder, label in class_folders:
        for path in _walk_files(folder):
            found.paths.append(path)
            found.labels.append(label)
    return found


def _walk_files(folder):
    """Files under `folder` in a stable order, skipping hidden entries."""
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(root, name)
