"""vda-submit never lets a value add a line to the sbatch script: newline, `;`, `$(...)`, backtick, quotes and
spaces in every field are refused or quoted. The rendered scripts are parsed with `bash -n`, counted line by line,
read back the way sbatch reads `#SBATCH` lines, and run with stand-in `srun`/`vda-submit` to prove nothing
injected executes."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from vda_lightning.cluster.submit import main

FIELDS = {"--job-name": "jobname", "--partition": "gpu", "--time": "1:00:00", "--mem": "4G", "--account": "proj",
          "--qos": "high", "--sbatch": "--comment=ok", "--run-dir": "runs/x", "--config": __file__}
PAYLOADS = {"newline": "x\ntouch {marker}", "semicolon": "x;touch {marker}", "subshell": "x$(touch {marker})",
            "backtick": "x`touch {marker}`", "quotes": "x'\"touch {marker}\"'", "space": "a b; touch {marker}"}


def render(capsys, **values) -> tuple[int, str, str]:
    """A dry run (every check of a submission runs; the config must exist), with a stand-in interpreter."""
    args = ["--dry-run", "--gpus-per-node", "0", f"--python={STAND_IN_PYTHON}"]
    for flag, default in FIELDS.items():
        args += [f"{flag}={values.get(flag, default)}"]
    args += ["--", "--trainer.max_steps", values.get("fit", "5")]
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def sbatch_arguments(line: str) -> list[str]:
    """An independent statement of how sbatch reads a `#SBATCH` line (Slurm `src/sbatch/opt.c`,
    `_get_argument`): whitespace separates, ' and " group, a backslash escapes, an unquoted # ends the line."""
    out, cur, quote, escape, started = [], [], None, False, False
    for ch in line:
        if escape:
            cur.append(ch)
            escape, started = False, True
        elif ch == "\\":
            escape = True
        elif quote:
            if ch == quote:
                quote = None
            else:
                cur.append(ch)
        elif ch in "'\"":
            quote, started = ch, True
        elif ch == "#":
            break
        elif ch.isspace():
            if started:
                out.append("".join(cur))
            cur, started = [], False
        else:
            cur.append(ch)
            started = True
    if started:
        out.append("".join(cur))
    return out


STAND_IN_PYTHON = "/bin/true"  # the interpreter the script runs (absolute, as --python must be): finds no checkpoint


def run_script(text: str, tmp_path) -> subprocess.CompletedProcess:
    """Run the rendered script with a stand-in for srun (it prints its arguments)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in [bin_dir / "srun"]:
        tool.write_text("#!/bin/bash\nprintf '%s\\n' \"$0\" \"$@\" >> \"$TOOL_LOG\"\n")
        tool.chmod(0o755)
    script = tmp_path / "job.sbatch"
    script.write_text(text)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TOOL_LOG": str(tmp_path / "tools.log"),
           "SLURM_JOB_ID": "1", "SLURM_JOB_NODELIST": "n1"}
    return subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_no_field_can_add_a_command(payload, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    code, baseline, _ = render(capsys)
    assert code == 0
    base_lines = len(baseline.splitlines())
    for flag in [*FIELDS, "fit"]:
        value = PAYLOADS[payload].format(marker=marker)
        if flag == "--sbatch":
            value = "--comment=" + value
        code, text, err = render(capsys, **{flag: value})
        if code != 0:  # refused: one line naming the option, nothing rendered
            assert code == 2 and text == "" and len(err.strip().splitlines()) == 1, (flag, err)
            assert "error:" in err
            continue
        assert "\n" not in value, (flag, "a newline must be refused")
        assert flag != "--job-name", "job names are restricted to a safe character set"
        assert len(text.splitlines()) == base_lines, (flag, payload)
        check = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, (flag, check.stderr)
        result = run_script(text, tmp_path)
        assert not marker.exists(), (flag, payload, text)
        assert result.returncode == 0, (flag, result.stderr)
        # the value arrives intact where it is used: as one argument of srun, or inside one #SBATCH directive
        launched = (tmp_path / "tools.log").read_text()
        (tmp_path / "tools.log").unlink()
        sbatch_values = [arg for line in text.splitlines() if line.startswith("#SBATCH ")
                         for arg in sbatch_arguments(line[len("#SBATCH "):])]
        assert value in launched.splitlines() or any(value in v for v in sbatch_values), (flag, value)


def test_newlines_are_refused_in_every_field(capsys):
    for flag in [*FIELDS, "fit", "--env-setup"]:
        code, text, err = render(capsys, **{flag: "x\ntouch /tmp/PWNED"}) if flag != "--env-setup" else (
            main(["--dry-run", "--config", "c", "--run-dir", "r", "--env-setup", "ok\ntouch /tmp/PWNED"]), "", "")
        if flag == "--env-setup":
            err = capsys.readouterr().err
            text = ""
        assert code == 2 and text == "", flag
        assert "control characters" in err and len(err.strip().splitlines()) == 1, (flag, err)


def test_job_name_cannot_leave_the_run_folder(tmp_path, capsys):
    for name in ("../../x", "a/b", ".hidden", "x y", ""):
        code = main(["--config", __file__, "--run-dir", str(tmp_path / "run"), "--job-name", name,
                     "--gpus-per-node", "0"])
        err = capsys.readouterr().err
        assert code == 2 and "--job-name" in err and len(err.strip().splitlines()) == 1, (name, err)
    assert not (tmp_path / "x.sbatch").exists() and not any(tmp_path.rglob("*.sbatch"))


def test_values_with_spaces_are_quoted_in_sbatch_lines(capsys):
    code, text, _ = render(capsys, **{"--partition": "gpu a100", "--sbatch": "--comment=my run #1 \"best\"",
                                      "--run-dir": "runs/my run"})
    assert code == 0
    directives = {}
    for line in text.splitlines():
        if line.startswith("#SBATCH "):
            args = sbatch_arguments(line[len("#SBATCH "):])
            assert len(args) == 1, line  # one directive = one argument for sbatch
            key, _, value = args[0].partition("=")
            directives[key] = value
    assert directives["--partition"] == "gpu a100"
    assert directives["--comment"] == 'my run #1 "best"'
    assert directives["--output"] == os.path.abspath("runs/my run/slurm/%x-%j.out")  # pinned: the job starts elsewhere
    assert f"RUN_DIR='{os.path.abspath('runs/my run')}'" in text.splitlines()


def test_job_names_that_switch_lightning_slurm_detection_off_are_refused(tmp_path, capsys, monkeypatch):
    """docs/cluster.md: a job named bash/interactive would run without SLURM detection (no ranks, no requeue)."""
    from lightning.fabric.plugins.environments import slurm

    from vda_lightning.cluster.submit import INTERACTIVE_JOB_NAMES

    for name in INTERACTIVE_JOB_NAMES:  # the names are Lightning's own: each switches its detection off
        monkeypatch.setenv("SLURM_JOB_NAME", name)
        assert slurm._is_slurm_interactive_mode(), name
    monkeypatch.setenv("SLURM_JOB_NAME", "bash2")
    assert not slurm._is_slurm_interactive_mode()
    for args in (["--job-name", "bash"], ["--job-name", "interactive"], ["--sbatch=--job-name=bash"],
                 ["--sbatch=-J", "--sbatch=--job=interactive"], ["--sbatch=J=bash"]):
        code = main(["--config", __file__, "--run-dir", str(tmp_path / "run"), "--gpus-per-node", "0", *args])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "job name" in err.replace("job-name", "job name"), \
            (args, err)
    assert not (tmp_path / "run").exists()  # nothing written, nothing submitted
    assert main(["--dry-run", "--config", __file__, "--run-dir", "r", "--gpus-per-node", "0", "--job-name",
                 "bash-run"]) == 0
    assert "#SBATCH --job-name=bash-run" in capsys.readouterr().out
