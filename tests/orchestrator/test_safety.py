"""Nothing the user owns or paid for is lost (issue 11, first half).

Inputs are never overwritten (resolved paths and inodes); `init` picks an output
that cannot collide and writes YAML that reads back; every check that would
fail after generation fails in `plan` and before the first segment of `run`;
`status` only reads; `clean` keeps whatever a rerun of any project sharing the
work folder would reuse, and asks before deleting generated segments.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.config import load_project
from orchestrator.errors import MediaError
from segmenters.plan import Plan
from tests.fs_helpers import read_only_folder
from tests.orchestrator.conftest import write_project


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _edit(project: Path, **changes) -> None:
    data = yaml.safe_load(project.read_text())
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    project.write_text(yaml.safe_dump(data, sort_keys=False))


def _cache_listing(workdir: Path) -> list[str]:
    return sorted(str(p.relative_to(workdir)) for p in (workdir / "cache").rglob("*"))


def _segment_keys(workdir: Path) -> set[str]:
    folder = workdir / "cache" / "segment"
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")} if folder.is_dir() else set()


@pytest.fixture()
def media(tmp_path, speech_flac, portrait_png):
    """Copies of the voiceover and portrait the test may point outputs at (and must find unchanged)."""
    folder = tmp_path / "media"
    folder.mkdir()
    vo, face = folder / "voiceover.flac", folder / "face.png"
    shutil.copy(speech_flac, vo)
    shutil.copy(portrait_png, face)
    return vo, face


# -- inputs are protected ------------------------------------------------------------------------

def _output_onto(kind: str, tmp_path: Path, vo: Path, face: Path, captions: Path) -> str:
    """An `output:` value that names an input in a roundabout way."""
    if kind == "same path":
        return str(vo)
    if kind == "dot-dot":
        return str(tmp_path / "media" / ".." / "media" / "captions.srt")
    if kind == "symlink":
        link = tmp_path / "link.mp4"
        link.symlink_to(face)
        return str(link)
    if kind == "hard link":
        link = tmp_path / "hard.mp4"
        os.link(vo, link)
        return str(link)
    if kind == "project file":
        return "project.yaml"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["same path", "dot-dot", "symlink", "hard link", "project file"])
def test_an_output_that_is_an_input_is_refused_by_plan_and_run(tmp_path, media, capsys, kind):
    vo, face = media
    captions = tmp_path / "media" / "captions.srt"
    captions.write_text("1\n00:00:00,500 --> 00:00:02,000\nHello\n")
    before = {p: p.read_bytes() for p in (vo, face, captions)}
    project = write_project(tmp_path / "p", vo, face, export={"captions": str(captions)})
    _edit(project, output=_output_onto(kind, tmp_path, vo, face, captions))
    project_text = project.read_text()
    for command in ("plan", "run"):
        code, _, err = cli(capsys, command, str(project))
        assert code == 2, err
        assert "would overwrite it" in err and "set `output:`" in err
    assert {p: p.read_bytes() for p in before} == before
    assert project.read_text() == project_text
    assert not (tmp_path / "p" / "project.longtake-work" / "cache").exists()  # refused before any work


def test_report_refuses_to_write_over_its_inputs(tmp_path, capsys):
    video = tmp_path / "report.json"
    video.write_bytes(b"not really a video")
    code, _, err = cli(capsys, "report", str(video), "--out", str(tmp_path))
    assert code == 2 and "would overwrite it" in err and "--out" in err
    assert video.read_bytes() == b"not really a video"


def test_init_never_names_the_output_after_an_mp4_voiceover(tmp_path, media):
    vo, face = media
    talk = tmp_path / "talk.mp4"
    shutil.copy(vo, talk)  # an MP4 voiceover (the audio track is what longtake reads)
    assert main(["init", str(talk), str(face)]) == 0
    project = load_project(tmp_path / "project.yaml")
    assert project.voiceover == talk.resolve()
    assert project.output != talk.resolve() and project.output.suffix == ".mp4"
    assert project.output.name == "talk.longtake.mp4"


def test_init_refuses_to_write_the_project_file_over_an_input(tmp_path, media, capsys):
    vo, face = media
    before = face.read_bytes()
    code, _, err = cli(capsys, "init", str(vo), str(face), "-o", str(face), "--force")
    assert code == 2 and "would overwrite it" in err
    assert face.read_bytes() == before


@pytest.mark.parametrize("names", [("take #2.wav", "[draft].png"), ("a: b.wav", "{face}.png"), ("it's \"x\".wav", "- p.png")])
def test_init_quotes_paths_so_they_round_trip(tmp_path, media, names):
    vo, face = media
    vo_name, face_name = names
    odd_vo, odd_face = tmp_path / vo_name, tmp_path / face_name
    shutil.copy(vo, odd_vo)
    shutil.copy(face, odd_face)
    assert main(["init", str(odd_vo), str(odd_face), "--backend", "animatic"]) == 0
    project = load_project(tmp_path / "project.yaml")
    assert (project.voiceover, project.portrait) == (odd_vo.resolve(), odd_face.resolve())
    assert project.output.parent == tmp_path.resolve()


# -- every check before the first GPU second ---------------------------------------------------------

def _bad(kind: str, tmp_path: Path, project: Path) -> str:
    """Break the project in one way; returns a phrase the error must contain."""
    if kind == "missing captions":
        _edit(project, export={"captions": str(tmp_path / "nope.srt")})
        return "captions file is missing"
    if kind == "malformed captions":
        bad = tmp_path / "bad.srt"
        bad.write_text("1\n00:00:01,000 --> 00:00:oops\nHello\n")
        _edit(project, export={"captions": str(bad)})
        return "bad.srt:2"
    if kind == "missing portrait":
        _edit(project, portrait=str(tmp_path / "gone.png"))
        return "portrait file is missing"
    if kind == "damaged portrait":
        broken = tmp_path / "broken.png"
        broken.write_bytes(Path(yaml.safe_load(project.read_text())["portrait"]).read_bytes()[:300])
        _edit(project, portrait=str(broken))
        return "damaged or truncated"
    if kind == "output is a folder":
        (tmp_path / "p" / "out" / "video.mp4").mkdir(parents=True)
        return "is a folder"
    if kind == "output below a file":
        (tmp_path / "p" / "out").write_text("a file where a folder should be")
        return "is a file, not a folder"
    if kind == "workdir is the output":
        _edit(project, workdir="out/video.mp4")
        return "is the work folder"
    if kind == "output inside the cache":
        _edit(project, workdir="w", output="w/cache/video.mp4")
        return "`clean` empties"
    if kind == "impossible size cap":
        _edit(project, export={"preset": "tiktok", "max_file_mb": 0.05})
        return "cannot fit"
    raise AssertionError(kind)


KINDS = ["missing captions", "malformed captions", "missing portrait", "damaged portrait", "output is a folder",
         "output below a file", "workdir is the output", "output inside the cache", "impossible size cap"]


@pytest.mark.parametrize("kind", KINDS)
def test_plan_and_run_stop_before_generation(tmp_path, media, capsys, kind):
    vo, face = media
    project = write_project(tmp_path / "p", vo, face)
    phrase = _bad(kind, tmp_path, project)
    code, _, err = cli(capsys, "plan", str(project))
    assert code in (2, 3) and phrase in err, err
    assert "unexpected error" not in err
    code, _, err = cli(capsys, "run", str(project))
    assert code in (2, 3) and phrase in err, err
    for workdir in (tmp_path / "p" / "project.longtake-work", tmp_path / "p" / "w"):
        assert not (workdir / "cache" / "segment").exists(), "a segment was generated before the check"


def test_output_on_a_read_only_file_system_is_refused_before_generation(tmp_path, media, capsys, monkeypatch):
    vo, face = media
    project = write_project(tmp_path / "p", vo, face)
    with read_only_folder(tmp_path / "ro", monkeypatch) as how:
        _edit(project, output=str(tmp_path / "ro" / "sub" / "video.mp4"))
        for command in ("plan", "run"):
            code, _, err = cli(capsys, command, str(project))
            assert code == 2 and "read-only file system" in err and "`output:`" in err, (how, err)
    assert not (tmp_path / "p" / "project.longtake-work" / "cache" / "segment").exists()


# -- a project that generated two segments ------------------------------------------------------------

@pytest.fixture(scope="module")
def generated(tmp_path_factory, speech_flac, portrait_png):
    """A project with segments 0 and 1 generated (no stitch): what `clean` must not throw away."""
    folder = tmp_path_factory.mktemp("generated")
    project = write_project(folder, speech_flac, portrait_png)
    assert main(["run", str(project), "--only-segments", "0,1"]) == 0
    return folder


def _copy_generated(generated: Path, dest: Path) -> tuple[Path, Path]:
    shutil.copytree(generated, dest)
    return dest / "project.yaml", dest / "project.longtake-work"


def test_run_leaves_plan_json_in_the_workdir(generated):
    plan = Plan.load(generated / "project.longtake-work" / "plan.json")
    assert len(plan.segments) >= 3 and (generated / "project.longtake-work" / "plan.png").is_file()


def test_only_segments_that_names_nothing_is_an_error(generated, tmp_path, capsys):
    project, _ = _copy_generated(generated, tmp_path / "g")
    code, _, err = cli(capsys, "run", str(project), "--only-segments", " , ")
    assert code == 2 and "--only-segments names no segment" in err


def test_status_reads_only_and_reports_a_broken_entry(generated, tmp_path, capsys):
    project, workdir = _copy_generated(generated, tmp_path / "g")
    key = sorted(_segment_keys(workdir))[0]
    clip = workdir / "cache" / "segment" / key / "clip.mp4"
    clip.write_bytes(clip.read_bytes()[:-10])  # shorter than its manifest says: broken
    before = _cache_listing(workdir)
    code, out, _ = cli(capsys, "status", str(project))
    assert code == 1 and "cache entry broken" in out
    assert _cache_listing(workdir) == before  # nothing moved aside, nothing deleted
    code, out, _ = cli(capsys, "status", str(project), "--json")
    assert any("broken" in s["reason"] for s in json.loads(out))
    assert _cache_listing(workdir) == before


def test_clean_keeps_segments_when_a_segmenter_setting_changes_but_not_the_plan(generated, tmp_path, capsys):
    project, workdir = _copy_generated(generated, tmp_path / "g")
    segments = _segment_keys(workdir)
    old_plan = (workdir / "plan.json").read_text()
    _edit(project, segmenter={"min_segment_s": 2.001})  # a new plan key; the same cuts
    code, out, err = cli(capsys, "clean", str(project), "--dry-run")
    assert code == 0 and "segment" not in out, out + err
    code, out, err = cli(capsys, "clean", str(project))
    assert code == 0, err
    assert _segment_keys(workdir) == segments
    assert main(["plan", str(project)]) == 0
    assert (workdir / "plan.json").read_text() == old_plan  # the test's premise: the plan did not change
    assert _done(capsys, project) >= {"segment_000", "segment_001"}


def _done(capsys, project: Path) -> set[str]:
    _, out, _ = cli(capsys, "status", str(project), "--json")
    return {s["step"] for s in json.loads(out) if s["done"]}


def test_clean_asks_before_deleting_segments_and_dry_run_lists_them(generated, tmp_path, capsys, monkeypatch):
    project, workdir = _copy_generated(generated, tmp_path / "g")
    segments = _segment_keys(workdir)
    _edit(project, prompt="somebody else entirely")  # both generated segments are now unused
    code, out, _ = cli(capsys, "clean", str(project), "--dry-run")
    assert code == 0 and "would remove" in out and "segment ×2" in out and "MB" in out
    code, _, err = cli(capsys, "clean", str(project))  # stdin is not a terminal here
    assert code == 2 and "--yes" in err and "2 generated segment(s)" in err
    assert _segment_keys(workdir) == segments
    import orchestrator.cli as cli_mod

    monkeypatch.setattr(cli_mod, "_stdin_is_tty", lambda: True)
    monkeypatch.setattr("click.confirm", lambda *a, **k: False)
    code, _, err = cli(capsys, "clean", str(project))
    assert code == 0 and "nothing removed" in err and _segment_keys(workdir) == segments
    code, out, _ = cli(capsys, "clean", str(project), "--yes")
    assert code == 0 and out.startswith("removed ") and "segment ×2" in out
    assert _segment_keys(workdir) == set()


def test_projects_sharing_a_workdir_keep_each_others_entries(generated, tmp_path, capsys):
    project_a, workdir = _copy_generated(generated, tmp_path / "g")
    _edit(project_a, workdir=str(workdir))
    project_b = project_a.with_name("other.yaml")
    shutil.copy(project_a, project_b)
    _edit(project_b, prompt="the same voice, another look")
    assert main(["run", str(project_b), "--only-segments", "0"]) == 0
    b_segment = _segment_keys(workdir) - _segment_keys(generated / "project.longtake-work")
    assert len(b_segment) == 1
    code, out, err = cli(capsys, "clean", str(project_a), "--yes")
    assert code == 0, err
    assert b_segment <= _segment_keys(workdir)  # project B's work survives A's clean
    assert "segment_000" in _done(capsys, project_b)
    # A broken neighbour stops clean rather than guessing.
    project_b.write_text("voiceover: [unclosed\n")
    code, _, err = cli(capsys, "clean", str(project_a), "--yes")
    assert code == 2 and "other.yaml" in err and "nothing was removed" in err


def test_a_corrupt_cached_clip_suggests_redo(generated, tmp_path):
    from stitchers.clips import check_clip

    plan = Plan.load(generated / "project.longtake-work" / "plan.json")
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\0" * 4096)
    with pytest.raises(MediaError) as info:
        check_clip(plan, 1, bad)
    assert "--redo 1" in str(info.value) and "delete" not in str(info.value)


def _segment_entry(workdir: Path, index: int) -> Path:
    for folder in (workdir / "cache" / "segment").iterdir():
        manifest = folder / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text())["params"]["index"] == index:
            return folder
    raise AssertionError(f"no entry for segment {index}")


def test_clean_keeps_a_chained_segment_whose_predecessor_is_missing(generated, tmp_path, capsys):
    """Segment 1's key hashes segment 0's tail; with segment 0 gone it can't be computed, yet a rerun may reuse it."""
    project, workdir = _copy_generated(generated, tmp_path / "g")
    second = _segment_entry(workdir, 1)
    shutil.rmtree(_segment_entry(workdir, 0))
    code, out, err = cli(capsys, "clean", str(project), "--yes")
    assert code == 0, err
    assert second.is_dir()
    _edit(project, prompt="a different prompt")  # now segment 1's params differ: a rerun can't reuse it
    code, out, err = cli(capsys, "clean", str(project), "--yes")
    assert code == 0 and not second.exists(), out + err


def test_full_run_leaves_no_stale_report_and_a_damaged_clip_says_redo(generated, tmp_path, capsys, monkeypatch):
    import quality.report as report_mod
    from quality.report import build_report

    project, workdir = _copy_generated(generated, tmp_path / "g")
    out = tmp_path / "g" / "out" / "video.mp4"
    reports = [out.with_name("video.report.json"), out.with_name("video.report.png")]
    assert main(["run", str(project)]) == 0
    assert all(p.is_file() for p in reports)
    first_video = out.read_bytes()

    # A new video whose report is interrupted: the old video's report must not stay beside it.
    _edit(project, export={"crf": 30})
    real_build = report_mod.build_report

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_mod, "build_report", interrupted)
    assert main(["run", str(project)]) == 130
    assert out.read_bytes() != first_video
    assert not any(p.exists() for p in reports), "the previous video's report sits beside the new video"
    monkeypatch.setattr(report_mod, "build_report", real_build)

    # `longtake report` into a folder holding an older report: stopped half-way, it leaves none of the old files.
    folder = tmp_path / "rep"
    folder.mkdir()
    for name in report_mod.REPORT_FILES:
        (folder / name).write_text("stale")
    monkeypatch.setattr(report_mod, "stream_features", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        build_report(out, out_dir=folder)
    assert not any((folder / name).exists() for name in report_mod.REPORT_FILES)
    monkeypatch.undo()

    # Same-size corruption of a cached clip: the stitch error names `--redo N` on this project, and that fixes it.
    clip = _segment_entry(workdir, 1) / "clip.mp4"
    clip.write_bytes(b"\0" * clip.stat().st_size)
    _edit(project, export={"crf": 31})
    code, _, err = cli(capsys, "run", str(project))
    assert code == 3 and f"longtake run {project.resolve()} --redo 1" in err, err
    assert main(["run", str(project), "--redo", "1"]) == 0
