"""The project file: defaults, relative paths, and errors that name key, line and fix — all at once."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from orchestrator.config import AnimaticOptions, LTX2Options, Project, load_project
from orchestrator.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "project.yaml"
    path.write_text(text)
    return path


def test_minimal_project_gets_documented_defaults(tmp_path):
    p = load_project(write(tmp_path, "voiceover: vo.wav\nportrait: face.png\n"))
    assert (p.video.width, p.video.height, p.video.fps) == (1080, 1920, 24)
    assert p.audio.target_lufs == -14 and p.audio.trim_leading_silence is True
    assert p.segmenter.vad == "silero" and p.segmenter.max_segment_s == 20
    assert p.generator.backend == "ltx2" and p.generator.chaining == "tail"
    assert p.voiceover == tmp_path / "vo.wav" and p.portrait == tmp_path / "face.png"
    assert p.workdir == tmp_path / "project.longtake-work"


def test_paths_are_relative_to_the_project_file(tmp_path):
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    p = load_project(write(sub, "voiceover: ../vo.wav\nportrait: /abs/face.png\noutput: out/x.mp4\nworkdir: w\n"))
    assert p.voiceover == tmp_path / "a" / "vo.wav"
    assert p.portrait == Path("/abs/face.png")
    assert p.output == sub / "out" / "x.mp4" and p.workdir == sub / "w"


def test_every_problem_is_reported_at_once_with_line_key_and_fix(tmp_path):
    text = """voiceover: vo.wav
portrait: face.png
video:
  widht: 1080
  fps: 0
segmenter:
  vad: silerro
  max_segment_s: 25
generator:
  backend: ltx2
  ofload: model
segments:
  - index: 2
    promt: hi
"""
    with pytest.raises(ConfigError) as err:
        load_project(write(tmp_path, text))
    exc = err.value
    assert exc.exit_code == 2
    lines = {re.search(r"`([^`]+)`", p).group(1): p for p in exc.problems}
    assert "project.yaml:4" in lines["video.widht"] and "did you mean `width`" in lines["video.widht"]
    assert "project.yaml:5" in lines["video.fps"]
    assert "project.yaml:7" in lines["segmenter.vad"] and "'silero'" in lines["segmenter.vad"]
    assert "project.yaml:8" in lines["segmenter.max_segment_s"] and "at most 20" in lines["segmenter.max_segment_s"]
    assert "project.yaml:11" in lines["generator.ofload"] and "did you mean `offload`" in lines["generator.ofload"]
    assert "project.yaml:14" in lines["segments.0.promt"]
    assert "project.yaml:13" in lines["segments.0.prompt"] and "missing" in lines["segments.0.prompt"]
    assert len(exc.problems) == 7


def test_missing_required_keys_and_wrong_types(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_project(write(tmp_path, "seed: -3\nvideo: {width: 1079}\n"))
    text = str(err.value)
    assert "`voiceover`: is required but missing" in text and "`portrait`: is required" in text
    assert "`seed`" in text and "`video.width`" in text and "use 1080" in text


def test_segment_bounds_must_be_ordered(tmp_path):
    with pytest.raises(ConfigError, match="min_segment_s ≤ target_segment_s ≤ max_segment_s"):
        load_project(write(tmp_path, "voiceover: a\nportrait: b\nsegmenter: {min_segment_s: 15, target_segment_s: 10}\n"))


def test_yaml_syntax_error_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"project.yaml:3: the project file is not valid YAML"):
        load_project(write(tmp_path, "voiceover: a\nportrait: b\nvideo: {width: 10\n"))


def test_duplicate_keys_are_errors_with_both_lines_at_any_depth(tmp_path):
    text = (
        "voiceover: a.wav\n"          # 1
        "portrait: p.png\n"           # 2
        "voiceover: b.wav\n"          # 3
        "video:\n"                    # 4
        "  width: 1080\n"             # 5
        "  width: 720\n"              # 6
        "generator: {backend: animatic, backend: animatic}\n"  # 7
        "segments:\n"                 # 8
        "  - index: 1\n"              # 9
        "    prompt: x\n"             # 10
        "    prompt: y\n"             # 11
    )
    with pytest.raises(ConfigError) as info:
        load_project(write(tmp_path, text))
    assert info.value.exit_code == 2
    assert info.value.problems == [
        "project.yaml:3: `voiceover` is set twice (first on line 1, again on line 3); YAML would silently keep the last one: delete one of them",
        "project.yaml:6: `video.width` is set twice (first on line 5, again on line 6); YAML would silently keep the last one: delete one of them",
        "project.yaml:7: `generator.backend` is set twice (first on line 7, again on line 7); YAML would silently keep the last one: delete one of them",
        "project.yaml:11: `segments[0].prompt` is set twice (first on line 10, again on line 11); YAML would silently keep the last one: delete one of them",
    ]
    # the same key in different mappings is fine
    load_project(write(tmp_path, "voiceover: a.wav\nportrait: p.png\nsegments:\n  - {index: 1, prompt: x}\n  - {index: 2, prompt: x}\n"))


def test_missing_project_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="longtake init"):
        load_project(tmp_path / "nope.yaml")


def test_backend_options_are_validated_per_backend(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_project(write(tmp_path, "voiceover: a\nportrait: b\ngenerator: {backend: animatic, stage2: none}\n"))
    assert "`generator.stage2`: unknown key" in str(err.value)
    p = load_project(write(tmp_path, "voiceover: a\nportrait: b\ngenerator: {backend: animatic, mouth_gain: 2}\n"))
    assert isinstance(p.generator, AnimaticOptions) and p.generator.mouth_gain == 2


def test_duplicate_segment_overrides_are_an_error(tmp_path):
    with pytest.raises(ConfigError, match="listed twice"):
        load_project(write(tmp_path, "voiceover: a\nportrait: b\nsegments: [{index: 1, prompt: x}, {index: 1, prompt: y}]\n"))


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        if name == "project_file":
            continue
        out.add(prefix + name)
        for ann in (field.annotation, *typing.get_args(field.annotation)):  # X and X | None
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                out |= _keys(ann, prefix + name + ".")
    return out


def test_example_yaml_documents_every_key():
    text = (REPO / "configs" / "example.yaml").read_text()
    documented = {line.split(":")[0].strip().lstrip("#").strip().lstrip("- ") for line in text.splitlines() if re.match(r"^\s*#?\s*-?\s*[a-z_0-9]+:", line)}
    wanted = {k.split(".")[-1] for k in _keys(Project)} | set(LTX2Options.model_fields) | set(AnimaticOptions.model_fields)
    missing = sorted(wanted - documented)
    assert not missing, f"configs/example.yaml does not document: {missing}"
    for line in text.splitlines():
        if re.match(r"^\s*[a-z_0-9]+:\s*\S", line) and not line.strip().startswith("-"):
            assert "#" in line, f"key without a comment in example.yaml: {line!r}"
    load_project(REPO / "configs" / "example.yaml")  # and it is valid as written


def test_demo_project_is_valid():
    p = load_project(REPO / "configs" / "demo.yaml")
    assert p.voiceover.is_file() and p.portrait.is_file()
    assert p.generator.backend == "animatic" and (p.video.width, p.video.height) == (540, 960)
    assert yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())["output"].endswith("demo.mp4")


def test_captions_section_resolves_paths_and_picks_the_style(tmp_path):
    p = load_project(write(tmp_path, "voiceover: vo.wav\nportrait: face.png\ncaptions: {script: words/narration.txt}\n"))
    assert p.captions.script == tmp_path / "words" / "narration.txt" and p.captions.resolved_style == "words" and p.captions.burn
    p = load_project(write(tmp_path, "voiceover: vo.wav\nportrait: face.png\ncaptions: {file: talk.srt, burn: false}\n"))
    assert p.captions.file == tmp_path / "talk.srt" and p.captions.resolved_style == "lines"


@pytest.mark.parametrize("captions, message", [
    ("{}", "exactly one of `script`"),
    ("{script: a.txt, file: b.srt}", "exactly one of `script`"),
    ("{file: b.srt, style: words}", "style words needs word times"),
    ("{script: a.txt, color: white}", "captions.color"),
])
def test_bad_captions_sections_say_what_to_do(tmp_path, captions, message):
    with pytest.raises(ConfigError) as info:
        load_project(write(tmp_path, f"voiceover: vo.wav\nportrait: face.png\ncaptions: {captions}\n"))
    assert message in str(info.value)


def test_old_export_captions_key_still_works_with_a_deprecation_warning(tmp_path, caplog):
    text = "voiceover: vo.wav\nportrait: face.png\nexport: {captions: talk.srt, burn_captions: true}\n"
    with caplog.at_level("WARNING", logger="longtake"):
        p = load_project(write(tmp_path, text))
    assert p.captions.file == tmp_path / "talk.srt" and p.captions.burn and p.captions.resolved_style == "lines"
    assert p.export.captions is None
    assert "`export.captions` is deprecated" in caplog.text
    with pytest.raises(ConfigError):
        load_project(write(tmp_path, text + "captions: {file: other.srt}\n"))
