"""`vda prepare-benchmark {bonn,kitti,sintel}` writes the CUT3R-family splits from tiny raw replicas, and `vda eval
--protocol cut3r` scores exactly the frames those splits name (CUT3R eval/video_depth/eval_depth.py + metadata.py,
MonST3R datasets_preprocess/prepare_bonn.py and prepare_kitti.py)."""
import json

import cv2
import numpy as np
import pytest

from vda_lightning.evaluation.cli import main as eval_main
from vda_lightning.evaluation.cut3r_splits import BONN_SEQUENCES, SINTEL_SEQUENCES
from vda_lightning.evaluation.prepare import main
from vda_lightning.io import read_depth, write_dpt

RNG = np.random.default_rng(27)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)


def _rgb():
    return RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)


def test_bonn_split_is_five_sequences_frames_30_to_140_in_name_order(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "out"
    # uneven time stamps: "100.25" sorts before "100.5" by character, after it by natural order
    stamps = [f"{100 + i // 2}.{25 if i % 2 == 0 else 5}" for i in range(32)]
    gts = {}
    for seq in (*BONN_SEQUENCES, "rgbd_bonn_kidnapping_box"):
        for stamp in stamps:
            depth = RNG.integers(0, 40000, (4, 6)).astype(np.uint16)
            _png(raw / seq / "rgb" / f"{stamp}.png", _rgb())
            _png(raw / seq / "depth" / f"{stamp}.png", depth)
            gts[(seq, stamp)] = depth
    assert main(["bonn", "--raw", str(raw), "--out", str(out)]) == 0
    index = json.loads((out / "bonn/bonn_cut3r.json").read_text())["bonn"]
    assert [next(iter(s)) for s in index] == sorted(BONN_SEQUENCES)  # the sixth sequence is not in the split
    wanted = sorted(stamps)[30:140]  # sorted(glob(...))[30:140], by character
    for seq in index:
        (name, frames), = seq.items()
        assert [f["gt_depth"] for f in frames] == [f"{name}/depth/{s}.png" for s in wanted]
        assert [f["image"] for f in frames] == [f"{name}/rgb/{s}.png" for s in wanted]
    assert (out / "bonn/bonn_video.json").is_file()  # the vda protocol's indexes beside it
    # the family's prediction folders (balloon2/frame_0000.npy ...) scored on exactly those frames
    preds = tmp_path / "preds"
    for name in BONN_SEQUENCES:
        for t in range(len(wanted)):
            (preds / name.removeprefix("rgbd_bonn_")).mkdir(parents=True, exist_ok=True)
            np.save(preds / name.removeprefix("rgbd_bonn_") / f"frame_{t:04d}.npy",
                    RNG.uniform(0.5, 8, (8, 12)).astype(np.float32))
    result = tmp_path / "r.json"
    assert eval_main(["--protocol", "cut3r", "--benchmark", "bonn", "--benchmark-root", str(out), "--predictions",
                      str(preds), "--output", str(result), "--no-progress"]) == 0
    scored = json.loads(result.read_text())["depth"]["bonn"]
    expected = [sum(int(((gts[(n, s)] > 0) & (gts[(n, s)] / 5000 < 70)).sum()) for s in wanted)
                for n in sorted(BONN_SEQUENCES)]
    assert scored["valid_pixels"] == expected and scored["frames"] == [2] * 5


def test_bonn_cut3r_only_refuses_a_partial_dataset(tmp_path, capsys):
    for i in range(31):
        _png(tmp_path / "raw" / BONN_SEQUENCES[0] / "rgb" / f"{i}.png", _rgb())
        _png(tmp_path / "raw" / BONN_SEQUENCES[0] / "depth" / f"{i}.png", np.full((4, 6), 999, np.uint16))
    assert main(["bonn", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--protocol", "cut3r"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lacks 4 of the cut3r split's 5 sequences" in err[0]  # before anything is written
    assert main(["bonn", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]) == 0  # all: a note
    assert "note: the cut3r bonn split is not written" in capsys.readouterr().err
    assert not (tmp_path / "out/bonn/bonn_cut3r.json").exists() and (tmp_path / "out/bonn/bonn_video.json").exists()


def test_kitti_split_is_every_drive_first_110_frames(tmp_path):
    raw, ann, out = tmp_path / "raw", tmp_path / "val", tmp_path / "out"
    drives = {"2011_09_26_drive_0002_sync": 112, "2011_09_28_drive_0037_sync": 3}
    for drive, count in drives.items():
        for i in range(count):
            _png(raw / drive[:10] / drive / "image_02/data" / f"{i:010d}.png", _rgb())
            _png(ann / drive / "proj_depth/groundtruth/image_02" / f"{i:010d}.png", np.full((4, 6), 999, np.uint16))
    assert main(["kitti", "--raw", str(raw), "--depth", str(ann), "--out", str(out), "--protocol", "cut3r"]) == 0
    index = {k: v for s in json.loads((out / "kitti/kitti_cut3r.json").read_text())["kitti"] for k, v in s.items()}
    assert {k: len(v) for k, v in index.items()} == {"2011_09_26_drive_0002_sync": 110, "2011_09_28_drive_0037_sync": 3}
    assert index["2011_09_26_drive_0002_sync"][-1]["gt_depth"].endswith("0000000109.png")
    assert not (out / "kitti/kitti_video.json").exists()  # --protocol cut3r: only its index


def test_sintel_split_is_fourteen_sequences_final_pass_raw_dpt(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "out"
    depths = {}
    for seq in (*SINTEL_SEQUENCES, "bamboo_1"):
        for i in (1, 2):
            for layer in ("final", "clean"):
                _png(raw / layer / seq / f"frame_{i:04d}.png", _rgb())
            depths[(seq, i)] = RNG.uniform(0.1, 200, (4, 6)).astype(np.float32)
            (raw / "depth" / seq).mkdir(parents=True, exist_ok=True)
            write_dpt(raw / "depth" / seq / f"frame_{i:04d}.dpt", depths[(seq, i)])
    assert main(["sintel", "--raw", str(raw), "--out", str(out)]) == 0
    index = {k: v for s in json.loads((out / "sintel/sintel_cut3r.json").read_text())["sintel"] for k, v in s.items()}
    assert sorted(index) == sorted(SINTEL_SEQUENCES)
    frame = index["alley_2"][1]
    assert frame == {"image": "alley_2/final/frame_0002.png", "gt_depth": "alley_2/depth_dpt/frame_0002.dpt",
                     "factor": 1.0}
    np.testing.assert_array_equal(read_depth(out / "sintel" / frame["gt_depth"]), depths[("alley_2", 2)])
    assert (out / "sintel/sintel_video.json").is_file()  # the vda protocol's clean / 16-bit split beside it
    # without the final pass, --protocol cut3r is one line; all writes the vda split with a note
    for seq in SINTEL_SEQUENCES:
        for path in (raw / "final" / seq).iterdir():
            path.unlink()
        (raw / "final" / seq).rmdir()
    capsys.readouterr()
    assert main(["sintel", "--raw", str(raw), "--out", str(tmp_path / "o2"), "--protocol", "cut3r"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lacks final/ or depth/ folders of 14 of its sequences" in err[0]


@pytest.mark.parametrize("dataset", ["scannet", "nyuv2"])
def test_datasets_without_a_cut3r_split_take_no_protocol_option(dataset, capsys):
    with pytest.raises(SystemExit):
        main([dataset, "--raw", "r", "--out", "o", "--protocol", "cut3r"])
