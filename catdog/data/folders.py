"""Find labelled image files in a folder with one sub-folder per class.

Real photo folders hold more than photos: hidden files (`.DS_Store`,
`._IMG_1.jpg`), nested albums, symbolic links (some dangling, some looping
back up), sockets and pipes. Every entry under a class folder either becomes a
candidate file or a `SkippedFile` with the reason, so nothing is dropped
without a line in the report.
"""

import os
import stat
from dataclasses import dataclass, field

from catdog.errors import DataError, os_reason

#: Label order shared with TFDS `cats_vs_dogs` and alphabetical folder order.
CLASS_NAMES = ("cat", "dog")
_FOLDER_LABELS = {"cat": 0, "cats": 0, "dog": 1, "dogs": 1}


@dataclass
class SkippedFile:
    """A file (or folder) that is not used, and why."""

    path: str
    reason: str


def label_of_folder(name):
    """0 for cat/cats, 1 for dog/dogs (any case), None for anything else."""
    return _FOLDER_LABELS.get(name.lower())


def class_folders_of(folder_names, class_names=None):
    """({folder name: label}, class names) for the sub-folders of a data folder.

    Without `class_names` the classes come from the folders: cat(s)/ and
    dog(s)/ make the cats-vs-dogs layout (cat = 0, dog = 1, other folders
    ignored, as catdog always read it); otherwise every sub-folder is a
    class, in sorted order. With `class_names` (a model's, or the training
    data's for its validation folder) each folder named like a class gets
    that class's label (cats/ for "cat" too) and other folders are ignored.
    """
    if class_names is None:
        if any(label_of_folder(name) is not None for name in folder_names):
            class_names = CLASS_NAMES
        else:
            class_names = tuple(sorted(folder_names))
            return {name: label for label, name in enumerate(class_names)}, class_names
    index = {name: label for label, name in enumerate(class_names)}
    lowered = {name.lower(): label for label, name in enumerate(class_names)}
    labels = {}
    for name in folder_names:
        label = index.get(name, lowered.get(name.lower()))
        if label is None and label_of_folder(name) is not None:
            label = index.get(CLASS_NAMES[label_of_folder(name)])
        if label is not None:
            labels[name] = label
    return labels, tuple(class_names)


@dataclass
class LabelledFiles:
    """Image candidates with their labels, what was ignored, and what was skipped."""

    paths: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    ignored_folders: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    class_names: tuple = CLASS_NAMES

    def __len__(self):
        return len(self.paths)

    def counts(self):
        return {name: self.labels.count(i) for i, name in enumerate(self.class_names)}


def list_labelled_files(directory, class_names=None):
    """All non-hidden files under the class sub-folders, recursively.

    Class sub-folders and their labels as `class_folders_of` says: cat(s)/
    and dog(s)/, or one folder per class (sorted names), or the folders of
    the given `class_names`.

    Every file is a candidate, whatever its extension: whether it is an image
    is for the decoder to say, and what it says is reported, not guessed.
    Hidden entries, special files, dangling links, folders reached twice
    (symbolic-link loops) and second paths to one file are listed in
    `skipped` with the reason; other top-level folders in `ignored_folders`
    (and in `skipped`).

    Raises:
        DataError: the folder does not exist or has no cat/dog sub-folders.
    """
    if not os.path.exists(directory):
        raise DataError(f"data folder not found: {directory}")
    if not os.path.isdir(directory):
        raise DataError(f"not a folder: {directory}")
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as error:
        raise DataError(f"cannot read data folder {directory}: {os_reason(error)}") from None
    found = LabelledFiles()
    class_folders = []
    folders = [entry for entry in entries if not entry.name.startswith(".") and _is_dir(entry)]
    labels, found.class_names = class_folders_of([entry.name for entry in folders], class_names)
    cat_dog = found.class_names == CLASS_NAMES
    for entry in folders:
        label = labels.get(entry.name)
        if label is None:
            found.ignored_folders.append(entry.path)
            reason = "not cat(s)/ or dog(s)/" if cat_dog else f"not a class ({', '.join(found.class_names)})"
            found.skipped.append(SkippedFile(entry.path, f"folder ignored: {reason}"))
        else:
            class_folders.append((entry.path, label))
    if not class_folders:
        raise DataError(
            f"{directory} has no class sub-folders: expected cat/ (or cats/) "
            "and dog/ (or dogs/), or one sub-folder per class, one image file per example"
            if class_names is None
            else f"{directory} has no sub-folder of the classes {', '.join(found.class_names)}"
        )
    if class_names is None and len(found.class_names) < 2:
        raise DataError(
            f"{directory} has one class sub-folder ({found.class_names[0]}/): "
            "a classifier needs two or more (cat/ and dog/, or one per class)"
        )
    first_path_of = {}
    for folder, label in class_folders:
        files, skipped = walk_files(folder)
        found.skipped += skipped
        for path in files:
            real = os.path.realpath(path)
            if real in first_path_of:
                found.skipped.append(SkippedFile(path, f"same file as {first_path_of[real]}"))
                continue
            first_path_of[real] = path
            found.paths.append(path)
            found.labels.append(label)
    return found


def walk_files(folder):
    """(files, skipped) under `folder`, recursively, in a stable order.

    Follows symbolic links to files and folders, but visits each real folder
    once, so a link back up the tree is a skipped entry, not an endless walk.
    catdog's own outputs (a run folder saved inside `cats/`) are skipped.
    Only regular files are candidates: a named pipe would block the decoder
    forever, a device or socket is not a photo.
    """
    files, skipped = [], []
    top = os.path.realpath(folder)
    visited = set()
    pending = [folder]
    while pending:
        current = pending.pop()
        real = os.path.realpath(current)
        if current != folder and (top + os.sep).startswith(real + os.sep):
            skipped.append(SkippedFile(current, "symbolic link loop (leads back up to a folder above)"))
            continue
        if real in visited:
            skipped.append(SkippedFile(current, "folder already visited (symbolic link loop or second link)"))
            continue
        visited.add(real)
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as error:
            skipped.append(SkippedFile(current, f"folder unreadable: {os_reason(error)}"))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                skipped.append(SkippedFile(entry.path, "hidden (name starts with '.')"))
                continue
            kind = _kind(entry)
            output = catdog_output(entry.path, kind)
            if output:
                skipped.append(SkippedFile(entry.path, output))
            elif kind == "dir":
                subfolders.append(entry.path)
            elif kind == "file":
                files.append(entry.path)
            else:
                skipped.append(SkippedFile(entry.path, kind))
        pending.extend(reversed(subfolders))  # popped in sorted order
    return files, skipped


#: Files that, together in one folder, make it a catdog run or evaluation
#: folder written before catdog marked its folders (`catdog.ownership`).
_OUTPUT_SIGNATURES = ({"run_state.json"}, {"model.keras", "history.json"}, {"metrics.json", "report.html"})
_EXPLANATION_SUFFIX = ".gradcam.png"


def catdog_output(path, kind):
    """Why the entry at `path` is one of catdog's own outputs, not a photo; or None.

    A folder catdog made (a run, an evaluation, a SavedModel export: they
    hold a `.catdog` marker, or the files a run writes) and the Grad-CAM
    figures `catdog predict --explain` writes.
    """
    if kind == "dir":
        from catdog.ownership import MARKER

        try:
            names = set(os.listdir(path))
        except OSError:
            return None  # the walk reports an unreadable folder itself
        if MARKER in names or any(signature <= names for signature in _OUTPUT_SIGNATURES):
            return "catdog output folder (a run, evaluation or export), not photos"
    elif kind == "file" and os.path.basename(path).endswith(_EXPLANATION_SUFFIX):
        return "catdog output (a Grad-CAM figure), not a photo"
    return None


def _is_dir(entry):
    try:
        return entry.is_dir()
    except OSError:
        return False


def _kind(entry):
    """"dir", "file", or the reason the entry is neither."""
    try:
        mode = os.stat(entry.path).st_mode  # follows symbolic links
    except FileNotFoundError:
        if entry.is_symlink():
            return f"broken symbolic link (to {os.readlink(entry.path)})"
        return "vanished while listing"
    except OSError as error:
        return f"unreadable: {os_reason(error)}"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode):
        return "not a regular file (named pipe)"
    if stat.S_ISSOCK(mode):
        return "not a regular file (socket)"
    return "not a regular file (device)"


def image_files(inputs):
    """Files named in `inputs`, folders walked recursively, hidden entries skipped.

    Returns (files, missing) so a missing path is reported, not fatal.
    """
    files, missing = [], []
    for item in inputs:
        if os.path.isdir(item):
            found, skipped = walk_files(item)
            files.extend(found)
            missing.extend(skipped)
        elif os.path.isfile(item):
            files.append(item)
        elif os.path.exists(item):
            missing.append(SkippedFile(item, "not a regular file"))
        else:
            missing.append(SkippedFile(item, "no such file or folder"))
    return files, missing
