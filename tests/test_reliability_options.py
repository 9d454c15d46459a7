"""Argument validation at start-up: the shared option layer refuses sizes <= 0 and unknown encoders for every
model-running command, and the DataModule refuses counts and sizes that cannot train, before any shard is read."""
from __future__ import annotations

import importlib

import pytest

from vda_lightning.data.datamodule import ValConfig, VideoDepthDataModule

COMMANDS = {  # command -> (module, the other arguments it needs to parse)
    "infer": ("vda_lightning.inference.cli", ["clip.mp4", "--checkpoint", "m.pth"]),
    "eval": ("vda_lightning.evaluation.cli", ["--benchmark", "kitti", "--benchmark-root", "b", "--checkpoint",
                                              "m.pth"]),
    "pseudolabel": ("vda_lightning.training.pseudolabel", ["s.tar", "--output", "o", "--teacher-checkpoint",
                                                           "t.pth"]),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("bad", [["--input-size", "0"], ["--input-size", "-14"], ["--input-size", "x"]])
def test_input_size_must_be_positive(command, bad, capsys):
    module, args = COMMANDS[command]
    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main([*args, *bad])
    assert e.value.code == 2
    assert "--input-size: expected a positive integer" in capsys.readouterr().err


def test_bench_input_size_and_encoder(capsys):
    from vda_lightning.bench.infer import run_infer_bench

    for bad, says in ((["--input-size", "0"], "positive integer"), (["--encoder", "vitx"], "got 'vitx'")):
        with pytest.raises(SystemExit) as e:
            run_infer_bench(bad)
        assert e.value.code == 2 and says in capsys.readouterr().err


@pytest.mark.parametrize("command", ["infer", "eval"])
def test_unknown_encoder_is_refused(command, capsys):
    module, args = COMMANDS[command]
    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main([*args, "--encoder", "vitx"])
    assert e.value.code == 2 and "invalid choice: 'vitx'" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, says", [
    ({"clip_len": 0}, "data: clip_len 0 must be >= 1"),
    ({"batch_size": 0}, "batch_size 0 and images.batch_size 0"),
    ({"batch_size": -1}, "data: batch_size -1 must be >= 0"),
    ({"crop_size": 50}, "data: crop_size [50, 50] must be positive multiples of 14"),
    ({"val": ValConfig(size=[28, 30])}, "data: val.size [28, 30] must be positive multiples of 14"),
    ({"epoch_length": 0}, "data: epoch_length 0 must be >= 1"),
    ({"val": ValConfig(batch_size=0)}, "data: val.batch_size 0 must be >= 1"),
    ({"num_workers": -2}, "data: num_workers -2 must be >= 0"),
    ({"max_frame_side": 0}, "data: max_frame_side 0 must be >= 1"),
])
def test_datamodule_refuses_values_that_cannot_train(kwargs, says, tmp_path):
    with pytest.raises(ValueError) as e:
        VideoDepthDataModule(train_shards=str(tmp_path / "none-*.tar"), **kwargs)
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("flag", ["--focal-length-x", "--focal-length-y"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1.5", "abc"])
def test_focal_lengths_must_be_finite_and_positive(flag, value, capsys):
    """Issue 24: `--focal-length-x nan|inf` wrote all-NaN point clouds with exit 0."""
    module, args = COMMANDS["infer"]
    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main([*args, "--save", "ply", f"{flag}={value}"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage: ")
    assert err.splitlines()[-1] == f"vda-infer: error: argument {flag}: expected a finite number > 0, got {value!r}"


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "x"])
def test_max_len_takes_a_frame_count_or_minus_one(value, capsys):
    """Issue 24: `--max-len 0` ran and blamed the input ("contains no frames"); 0 is refused at the door."""
    module, args = COMMANDS["infer"]
    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main([*args, f"--max-len={value}"])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == ("vda-infer: error: argument --max-len: expected a number of "
                                                        f"frames >= 1 (or -1: all), got {value!r}")
    from vda_lightning.cli.options import frame_count

    assert frame_count("-1") == -1 and frame_count("3") == 3


@pytest.mark.parametrize("value", ["inf", "nan", "1e300"])
def test_target_fps_must_be_a_finite_rate(value, capsys):
    module, args = COMMANDS["infer"]
    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main([*args, f"--target-fps={value}"])
    assert e.value.code == 2 and "argument --target-fps: expected a frame rate" in capsys.readouterr().err
