"""A full disk is one line naming the file being written, exit 1, and a truthful status.

The disk is real: a small tmpfs, mounted in a mount namespace of the test's own (as root
``unshare --mount``; otherwise in a user namespace, ``unshare --user --map-root-user
--mount``), filled with a file to the free space the case needs. Where neither can mount
(no ``unshare``, user namespaces off), the tests skip, saying so. Every step runs the real
``fusebench`` console script inside that namespace; what the test checks is copied out of
the tmpfs before the namespace (and with it the mount) goes away. Each case starts the CLI
once or twice (seconds each): the eval case runs by default, the others are ``slow``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reports import rundir

FUSEBENCH = str(Path(sys.executable).parent / "fusebench")
DISK_KB = 512


@functools.cache
def _namespace() -> list[str]:
    """The command prefix that runs a shell where ``mount -t tmpfs`` works."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to mount a small tmpfs")
    prefix = ["unshare", "--mount"]
    if os.geteuid() != 0:
        prefix = ["unshare", "--user", "--map-root-user", "--mount"]
    probe = subprocess.run(
        [*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({' '.join(prefix)}): {probe.stderr.strip()}")
    return prefix


def _on_small_disk(tmp_path: Path, env: dict[str, str], steps: str) -> str:
    """Run the bash ``steps`` with ``$DISK`` a fresh tmpfs of DISK_KB KiB (``fill KB`` leaves
    KB KiB free, ``unfill`` frees it all again), ``$OUT`` a folder on the real disk, and
    ``$FUSEBENCH`` the console script; returns their stdout."""
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    script = f"""
set -u
mount -t tmpfs -o size={DISK_KB}k tmpfs "$DISK"
fill() {{ head -c $(( ({DISK_KB} - $1) * 1024 )) /dev/zero > "$DISK/filler"; }}
unfill() {{ rm -f "$DISK/filler"; }}
{steps}
"""
    done = subprocess.run(
        [*_namespace(), "bash", "-c", script],
        env=env | {"DISK": str(disk), "OUT": str(out), "FUSEBENCH": FUSEBENCH},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


@pytest.mark.slow  # ~25 s: the default layer keeps under 15 min
def test_eval_onto_a_full_disk_names_the_file_records_failed_and_resumes(
    tmp_path: Path, zoo: Path, fusebench_env: dict[str, str]
) -> None:
    """Two pages free: the lock file and the manifest fit, the samples file does not, and
    nothing is left for the atomic write of the failed manifest (it is rewritten in place)."""
    run = tmp_path / "disk" / "run"
    args = f'eval "{zoo / "tiny-llama"}" --tasks nsmc --num-fewshot 0 --limit 8 --output "{run}"'
    out = tmp_path / "out"
    _on_small_disk(
        tmp_path,
        fusebench_env,
        f"""
fill 8
$FUSEBENCH {args} > /dev/null 2> "$OUT/full.err"; echo $? > "$OUT/full.rc"
cp "{run}/manifest.json" "$OUT/full-manifest.json"
ls -a "{run}/0-shot/samples" > "$OUT/full-samples.ls"
unfill
$FUSEBENCH {args} > /dev/null 2> "$OUT/rerun.err"; echo $? > "$OUT/rerun.rc"
cp -r "{run}" "$OUT/run"
""",
    )
    samples = run / "0-shot" / "samples" / "nsmc.jsonl"
    assert (out / "full.rc").read_text().strip() == "1"
    line = _one_error_line((out / "full.err").read_text())
    assert line == f"error: {samples}: cannot write it: no space left on device"
    manifest = json.loads((out / "full-manifest.json").read_text())
    assert manifest["status"] == "failed" and "no space left on device" in manifest["error"]
    assert manifest["completed"] == []
    assert (out / "full-samples.ls").read_text().split() == [".", ".."]  # no torn file
    assert (out / "rerun.rc").read_text().strip() == "0", (out / "rerun.err").read_text()
    again = rundir.read_manifest(out / "run")
    assert again.status == "complete" and [c.n_samples for c in again.completed] == [8]
    assert len((out / "run" / "0-shot" / "samples" / "nsmc.jsonl").read_text().splitlines()) == 8


@pytest.mark.slow
def test_eval_whose_manifest_cannot_be_written_says_so(
    tmp_path: Path, zoo: Path, fusebench_env: dict[str, str]
) -> None:
    """One page free, taken by the lock file: the manifest itself has no room."""
    run = tmp_path / "disk" / "run"
    out = tmp_path / "out"
    _on_small_disk(
        tmp_path,
        fusebench_env,
        f"""
fill 4
$FUSEBENCH eval "{zoo / "tiny-llama"}" --tasks nsmc --limit 4 --output "{run}" \\
    > /dev/null 2> "$OUT/err"; echo $? > "$OUT/rc"
ls -A "$DISK" > "$OUT/disk.ls"
""",
    )
    assert (out / "rc").read_text().strip() == "1"
    line = _one_error_line((out / "err").read_text())
    assert line == f"error: {run / 'manifest.json'}: cannot write it: no space left on device"
    assert (out / "disk.ls").read_text().split() == ["filler"]  # nothing claims a run


@pytest.mark.slow
def test_fuse_extract_onto_a_full_disk_names_the_shard_and_resumes(
    tmp_path: Path, fuse_config, nsmc_rows, fusebench_env: dict[str, str]
) -> None:
    from fusion.store import TopKStore

    config = fuse_config(tmp_path, nsmc_rows(40), work_dir=str(tmp_path / "disk" / "work"))
    config.write_text(
        config.read_text().replace("rows_per_shard: 4", "rows_per_shard: 10"), encoding="utf-8"
    )
    out = tmp_path / "out"
    _on_small_disk(
        tmp_path,
        fusebench_env,
        f"""
mkdir -p "$DISK/work" && fill 24
$FUSEBENCH fuse extract "{config}" --quiet > /dev/null 2> "$OUT/full.err"
echo $? > "$OUT/full.rc"
unfill
$FUSEBENCH fuse extract "{config}" --quiet > /dev/null 2> "$OUT/rerun.err"
echo $? > "$OUT/rerun.rc"
cp -r "$DISK/work" "$OUT/work"
""",
    )
    assert (out / "full.rc").read_text().strip() == "1"
    line = _one_error_line((out / "full.err").read_text())
    stores = tmp_path / "disk" / "work" / "stores"
    assert line.startswith(f"error: {stores}/tiny-llama/shard-0000")
    assert line.endswith(".safetensors: cannot write it: no space left on device")
    assert (out / "rerun.rc").read_text().strip() == "0", (out / "rerun.err").read_text()
    for name in ("tiny-llama", "tiny-mistral"):
        store = TopKStore(out / "work" / "stores" / name)
        store.verify()  # every shard's sha256 as recorded: nothing torn was kept
        assert store.manifest.complete and len(store) == 40
