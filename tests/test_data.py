import numpy as np
import pytest
from PIL import Image

import catdog
from catdog.data.folders import list_labelled_files
from catdog.data.screening import inspect_files
from catdog.data.pipeline import manifest_dataset
from catdog.data.sources import load_splits, stratified_split
from conftest import assert_one_line_error, run_cli, write_photo_folder


def test_folder_labels_follow_cat_zero_dog_one_in_any_case(tmp_path):
    write_photo_folder(tmp_path, per_class=2, names=("Dog", "CATS"))
    files = list_labelled_files(str(tmp_path))
    labels = {p.split("/")[-2]: l for p, l in zip(files.paths, files.labels)}
    assert labels == {"CATS": 0, "Dog": 1}
    assert files.counts() == {"cat": 2, "dog": 2}


def test_folder_walk_is_recursive_and_skips_hidden_and_other_folders(tmp_path):
    write_photo_folder(tmp_path, per_class=1)
    nested = tmp_path / "dogs" / "puppies"
    nested.mkdir()
    Image.new("RGB", (10, 10)).save(nested / "p.jpg")
    Image.new("RGB", (10, 10)).save(tmp_path / "dogs" / ".hidden.jpg")
    (tmp_path / "horses").mkdir()
    files = list_labelled_files(str(tmp_path))
    assert any(p.endswith("puppies/p.jpg") for p in files.paths)
    assert not any(".hidden" in p for p in files.paths)
    assert files.ignored_folders == [str(tmp_path / "horses")]
    assert files.counts() == {"cat": 1, "dog": 2}


@pytest.mark.parametrize("make", ["missing", "no_classes"])
def test_unusable_folders_are_data_errors(tmp_path, make):
    target = tmp_path / "nothing"
    if make == "no_classes":
        (target / "birds").mkdir(parents=True)
    with pytest.raises(catdog.DataError):
        list_labelled_files(str(target))


def test_corrupt_files_are_skipped_counted_and_explained(tmp_path):
    root = write_photo_folder(tmp_path, per_class=3)
    good = (root / "cats" / "cats.0.jpg").read_bytes()
    (root / "cats" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "dogs" / "empty.jpg").write_bytes(b"")
    (root / "dogs" / "notes.jpg").write_text("<html>not a photo</html>")
    files = list_labelled_files(str(root))
    manifest = inspect_files(files.paths, files.labels, 32)
    assert len(manifest) == 6
    reasons = {s.path.split("/")[-1]: s.reason for s in manifest.skipped}
    assert set(reasons) == {"truncated.jpg", "empty.jpg", "notes.jpg"}
    assert reasons["empty.jpg"] == "empty file"
    assert "not an image" in reasons["notes.jpg"]
    assert "truncated" in reasons["truncated.jpg"]


def test_pipeline_yields_uint8_batches_of_the_target_size_with_labels(tmp_path):
    root = write_photo_folder(tmp_path, per_class=3, size=(70, 50))
    Image.new("RGBA", (20, 30), (255, 0, 0, 0)).save(root / "cats" / "alpha.png")
    Image.new("L", (40, 40), 128).save(root / "dogs" / "grey.gif")
    Image.new("RGB", (9, 9), (1, 2, 3)).save(root / "dogs" / "tiny.bmp")
    files = list_labelled_files(str(root))
    manifest = inspect_files(files.paths, files.labels, 32)
    assert not manifest.skipped and len(manifest) == 9
    images, labels = [], []
    for x, y in manifest_dataset(manifest, 32, batch_size=4):
        assert x.dtype.name == "uint8" and tuple(x.shape[1:]) == (32, 32, 3)
        images.append(x.numpy())
        labels.append(y.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    assert images.shape == (9, 32, 32, 3)
    np.testing.assert_array_equal(labels, manifest.labels)
    alpha = images[manifest.paths.index(str(root / "cats" / "alpha.png"))]
    assert alpha.min() == 255  # a fully transparent pixel is white, not black


def test_stratified_split_holds_out_each_class_and_is_seeded():
    labels = [0] * 10 + [1] * 30
    train, val = stratified_split(labels, 0.2, seed=3)
    assert sorted(train + val) == list(range(40))
    assert sum(labels[i] == 0 for i in val) == 2 and sum(labels[i] == 1 for i in val) == 6
    assert stratified_split(labels, 0.2, seed=3) == (train, val)
    assert stratified_split(labels, 0.2, seed=4) != (train, val)


def test_load_splits_from_one_folder_with_limit(tmp_path):
    root = write_photo_folder(tmp_path, per_class=10)
    splits = load_splits(str(root), image_size=32, batch_size=4, val_split=0.2, limit=8, seed=0)
    assert splits.counts["train"] == 8 and splits.counts["validation"] == 4
    assert splits.counts["validation_per_class"] == {"cat": 2, "dog": 2}
    assert sum(int(y.shape[0]) for _, y in splits.train) == 8


def test_one_class_folder_is_a_data_error(tmp_path):
    write_photo_folder(tmp_path, per_class=3)
    for f in (tmp_path / "dogs").iterdir():
        f.unlink()
    with pytest.raises(catdog.DataError, match="no dog images"):
        load_splits(str(tmp_path), image_size=32)


def test_tfds_source_uses_the_80_20_split_and_cat_dog_labels(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    from catdog.data import tfds_source
    calls = []
    real_load = tfds.load

    def spy(name, **kwargs):
        calls.append((name, kwargs))
        return real_load(name, **kwargs)

    monkeypatch.setattr(tfds, "load", spy)
    # mock_data stands in for the download; catdog's check that one is possible would fail offline.
    # (test_tfds.py runs TFDS' real builder.)
    monkeypatch.setattr(tfds_source, "check_download_possible", lambda builder: None)
    with tfds.testing.mock_data(num_examples=20):  # mock data ignores slicing
        splits = load_splits("tfds:cats_vs_dogs", image_size=32, batch_size=5, limit=10)
        x, y = next(iter(splits.train))
        two_epochs = [float(b.numpy().sum()) for b, _ in splits.train_for_epochs(0, 2)]
        second_epoch = [float(b.numpy().sum()) for b, _ in splits.train_for_epochs(1, 2)]
    assert splits.steps_per_epoch == 2 and len(two_epochs) == 4
    assert two_epochs[2:] == second_epoch  # epochs keyed by number, as for folders
    assert calls[0][0] == "cats_vs_dogs"
    assert calls[0][1]["split"] == ["train[:80%]", "train[80%:]"]
    assert calls[0][1]["as_supervised"] is True
    assert splits.counts["train"] == 10
    assert x.dtype.name == "uint8" and tuple(x.shape) == (5, 32, 32, 3)
    assert set(np.unique(y.numpy())) <= {0.0, 1.0}


def test_tfds_unavailable_offline_says_to_use_a_folder(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(catdog.DataError, match="--data DIR"):
        load_splits("tfds:cats_vs_dogs", image_size=32)


def test_cached_pipeline_decodes_once_and_reshuffles_each_epoch(tmp_path, monkeypatch):
    from catdog.data import pipeline

    root = write_photo_folder(tmp_path, per_class=6)
    files = list_labelled_files(str(root))
    manifest = inspect_files(files.paths, files.labels, 32)
    dataset = manifest_dataset(manifest, 32, batch_size=4, shuffle=True, seed=1, cache="memory")
    epochs = [np.concatenate([x.numpy() for x, _ in dataset]) for _ in range(2)]
    sums = [sorted(int(image.sum()) for image in epoch) for epoch in epochs]
    assert sums[0] == sums[1]  # the same 12 decoded images each epoch...
    assert not np.array_equal(epochs[0], epochs[1])  # ...in a new order
    uncached = manifest_dataset(manifest, 32, batch_size=4, cache="none")
    assert sorted(int(i.sum()) for x, _ in uncached for i in x.numpy()) == sums[0]


def test_auto_cache_only_when_it_fits():
    from catdog.data.pipeline import resolve_cache

    assert resolve_cache("auto", 2000, 224) == ""  # 300 MB: in memory
    assert resolve_cache("auto", 20000, 224) is None  # 3 GB: stream
    assert resolve_cache("none", 10, 32) is None
    assert resolve_cache("/tmp/x", 10, 32) == "/tmp/x"


@pytest.mark.parametrize("cache", ["none", "memory"])
def test_each_epochs_order_depends_on_the_seed_and_the_epoch_only(tmp_path, cache):
    """What lets a resumed run see the batches the interrupted one would have."""
    root = write_photo_folder(tmp_path, per_class=5)
    files = list_labelled_files(str(root))
    manifest = inspect_files(files.paths, files.labels, 32)

    def epochs(first, last, seed=0):
        dataset = manifest_dataset(manifest, 32, 4, shuffle=True, seed=seed, cache=cache, epochs=(first, last))
        batches = [y.numpy().tolist() + [float(x.numpy().sum())] for x, y in dataset]
        return [batches[i : i + 3] for i in range(0, len(batches), 3)]  # 3 batches per epoch

    whole = epochs(0, 3)
    assert len(whole) == 3 and whole[0] != whole[1] != whole[2]
    assert epochs(1, 3) == whole[1:] and epochs(2, 3) == whole[2:]
    assert epochs(0, 1, seed=1) != whole[:1]
    assert epochs(3, 3) == []


@pytest.mark.parametrize(
    "options, field", [({"val_split": 0.1}, "val_split"), ({"val_data": "photos/val"}, "val_data")]
)
def test_tfds_refuses_a_validation_split_it_would_not_use(options, field, tmp_path, capsys):
    """TFDS is always 80/20 (evaluate holds the same 20% out): another split is refused, not ignored."""
    with pytest.raises(catdog.ConfigError, match="always split 80/20") as error:
        load_splits("tfds:cats_vs_dogs", image_size=32, **options)
    assert error.value.field == field
    with pytest.raises(catdog.ConfigError, match="always split 80/20"):
        catdog.TrainConfig(data="tfds:cats_vs_dogs", **options)
    catdog.TrainConfig(data="tfds:cats_vs_dogs", val_split=0.2)  # the split it uses: fine
    option = "--" + field.replace("_", "-")
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "r", option, options[field])
    assert_one_line_error(code, err, option, "always split 80/20")
    assert not (tmp_path / "r").exists()  # refused before any work
