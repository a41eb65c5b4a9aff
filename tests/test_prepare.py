"""jaxgan prepare: a uint8 store that reads as its source did, refused when it does not match."""
import json

import numpy as np
import pytest
from PIL import Image

from jaxgan import cli
from jaxgan.data import FolderSource, make_source, npz_source, uint8_to_unit
from jaxgan.data.store import StoreSource, write_store


def _folder(root, n=5, size=(30, 22)):
    """Two class sub-folders of JPEGs of ``size`` (WxH), not square: crop and resize both act."""
    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / c / f"{i}.jpg")
    return root


def _prepare(*argv):
    return cli.main(["prepare", *map(str, argv), "--no-progress"])


def test_a_prepared_folder_reads_as_the_folder_bit_for_bit(tmp_path, capsys):
    folder = _folder(tmp_path / "images")
    assert _prepare(folder, tmp_path / "st", "--resolution", 16, "--crop", "center", "--workers", 2,
                    "--chunk", 3) == 0
    assert "--set data.name=store --set data.path=" in capsys.readouterr().out
    meta = json.loads((tmp_path / "st" / "store.json").read_text())
    assert meta["count"] == 10 and meta["shape"] == [16, 16, 3] and meta["classes"] == ["cats", "dogs"]
    assert meta["options"] == {"resolution": 16, "channels": None, "crop": "center"}
    assert meta["source"]["name"] == "folder" and len(meta["digest"]) == 64
    source = FolderSource(folder, seed=3, resolution=16, crop="center")
    store = make_source({"name": "store", "path": str(tmp_path / "st"), "resolution": 16, "crop": "center"}, seed=3)
    for start, size in ((0, 7), (7, 9), (23, 4)):  # across epoch boundaries: the same permutations
        a, b = source.get_batch(start, size), store.get_batch(start, size)
        assert a.keys() == b.keys() and b["x"].dtype == np.float32
        for k in a:
            np.testing.assert_array_equal(a[k].view(np.uint8), b[k].view(np.uint8))  # the bits
        stored = store.get_stored_batch(start, size)
        assert stored["x"].dtype == np.uint8
        np.testing.assert_array_equal(stored["x"], source.get_stored_batch(start, size)["x"])
        np.testing.assert_array_equal(uint8_to_unit(stored["x"]).view(np.uint32), a["x"].view(np.uint32))
    assert store.info == source.info


def test_an_experiment_is_prepared_with_its_options_and_a_store_with_other_options_is_refused(tmp_path, capsys):
    folder = _folder(tmp_path / "images")
    out = tmp_path / "st"
    assert _prepare("dcgan64", out, "--set", f"data.path={folder}", "--set", "data.resolution=8") == 0
    meta = json.loads((out / "store.json").read_text())
    assert meta["options"] == {"resolution": 8, "channels": 3, "crop": "center"} and meta["shape"] == [8, 8, 3]
    with pytest.raises(ValueError, match=r"has resolution=8 but the experiment asks resolution=16.*data.resolution=8"):
        make_source({"name": "store", "path": str(out), "resolution": 16, "crop": "center"}, seed=0)
    make_source({"name": "store", "path": str(out), "resolution": 8, "channels": 3}, seed=0)  # equal: fine
    make_source({"name": "store", "path": str(out)}, seed=0)  # unset options take the store's


def test_a_truncated_or_corrupted_store_is_detected(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", x=x, y=np.arange(50) % 4)
    write_store(npz_source(tmp_path / "a.npz", seed=0, label_key="y"), tmp_path / "st", progress=False)
    StoreSource(tmp_path / "st", seed=0)  # whole: opens
    images = tmp_path / "st" / "images.npy"
    data = bytearray(images.read_bytes())
    data[-100] ^= 1  # one bit of one pixel
    images.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is corrupted: its bytes do not match the digest"):
        StoreSource(tmp_path / "st", seed=0)
    StoreSource(tmp_path / "st", seed=0, verify=False)  # the digest check can be skipped ...
    images.write_bytes(bytes(data[:-64]))
    with pytest.raises(ValueError, match="is truncated; prepare it again"):  # ... the size check cannot
        StoreSource(tmp_path / "st", seed=0, verify=False)
    images.write_bytes(bytes(data))
    (tmp_path / "st" / "labels.npy").unlink()
    with pytest.raises(FileNotFoundError, match="has no labels.npy"):
        StoreSource(tmp_path / "st", seed=0)
    with pytest.raises(FileNotFoundError, match="jaxgan prepare"):
        StoreSource(tmp_path / "nowhere", seed=0)


def test_an_interrupted_prepare_leaves_no_store_and_an_existing_one_is_kept(tmp_path, capsys):
    x = np.random.default_rng(1).integers(0, 256, (40, 4, 4, 1), dtype=np.uint8)
    np.save(tmp_path / "a.npy", x)
    source = npz_source(tmp_path / "a.npy", seed=0)
    examples = source.stored_examples

    def failing(indices):
        if indices[0] >= 20:
            raise OSError("disk went away")
        return examples(indices)

    source.stored_examples = failing
    with pytest.raises(OSError, match="disk went away"):
        write_store(source, tmp_path / "st", chunk=10, workers=2, progress=False)
    assert not (tmp_path / "st").exists()  # only the .partial sibling, never a store
    source.stored_examples = examples
    write_store(source, tmp_path / "st", chunk=10, progress=False)  # a rerun starts over and completes
    assert not (tmp_path / "st.partial").exists()
    np.testing.assert_array_equal(np.load(tmp_path / "st" / "images.npy"), x)
    assert _prepare(tmp_path / "a.npy", tmp_path / "st") == 2
    assert "already exists" in capsys.readouterr().err


def test_sources_that_are_not_uint8_are_not_prepared(tmp_path, capsys):
    np.save(tmp_path / "f.npy", np.random.default_rng(0).random((6, 4, 4, 3), dtype=np.float32))
    assert _prepare(tmp_path / "f.npy", tmp_path / "st") == 2
    assert "gives float images" in capsys.readouterr().err
    np.save(tmp_path / "rgb.npy", np.zeros((6, 4, 4, 3), np.uint8))
    assert _prepare(tmp_path / "rgb.npy", tmp_path / "st", "--channels", "1") == 2  # luma is float32
    assert "RGB -> grey" in capsys.readouterr().err
    assert _prepare("ring8", tmp_path / "st") == 2
    assert "only images can be prepared" in capsys.readouterr().err
    assert not (tmp_path / "st").exists()


def test_an_experiment_trained_from_its_store_reads_the_batches_its_folder_gives(tmp_path):
    """`--set data.name=store data.path=OUT` on dcgan64: the run's batches (uint8, as they cross to the
    device) equal the folder run's, step for step, for every critic sub-batch."""
    from jaxgan import config as config_lib, run as run_lib

    folder = _folder(tmp_path / "images", n=9)
    sets = [f"data.path={folder}", "data.resolution=28", "train.batch_size=4", "train.n_critic=2"]
    assert _prepare("dcgan64", tmp_path / "st", *[a for s in sets for a in ("--set", s)]) == 0
    runs = [run_lib.build(*config_lib.resolve("dcgan64", sets + extra, smoke=True))
            for extra in ([], ["data.name=store", f"data.path={tmp_path / 'st'}"])]
    assert runs[1].source.info == runs[0].source.info
    for step in (0, 1, 5):  # 5: past the first epoch of 18 examples
        a, b = (run_lib.host_batch(r, step) for r in runs)
        assert a["x"].dtype == b["x"].dtype == np.uint8 and a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
