"""The ownership rule (plsearch.outputs): outputs never over inputs, never over files plsearch did not write,
never two on one name; a results folder belongs to one study; folders of earlier versions are adopted."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plsearch.outputs import (
    MARKER,
    OutputError,
    check_out,
    claim_folder,
    claim_results,
    read_marker,
    record_written,
    safe_child,
    unique_names,
)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "D"
    (d / "images").mkdir(parents=True)
    (d / "masks").mkdir()
    (d / "images" / "a.png").write_bytes(b"img")
    (d / "masks" / "a.png").write_bytes(b"mask")
    return d


@pytest.mark.parametrize(
    "out, inp",
    [
        ("D/images", "D/images"),
        ("D/masks", "D"),
        ("D/images/sub", "D/images"),
        ("D", "D"),
        ("D/images/deeper/still", "D"),
    ],
)
def test_out_equal_to_or_inside_an_input_is_refused(tmp_path, data, monkeypatch, out, inp):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match="never writes into data it reads"):
        check_out(out, inputs=[inp])
    assert not (tmp_path / out).exists() or (tmp_path / out).is_dir()


def test_out_beside_or_above_an_input_is_allowed_unless_it_holds_it(tmp_path, data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_out("P", inputs=["D"]) == (tmp_path / "P").resolve()
    assert check_out("D", inputs=["D/images"])  # writes next to images/, not into it
    with pytest.raises(OutputError, match="holds the input"):
        check_out(".", inputs=["D"], contains_inputs=False)
    with pytest.raises(OutputError, match="holds the input"):
        check_out("D/images", inputs=["D/images/a.png"], contains_inputs=False)


def test_out_that_is_a_file_is_refused_without_touching_it(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("precious")
    with pytest.raises(OutputError, match="existing file"):
        check_out(f)
    with pytest.raises(OutputError, match="existing file"):
        claim_results(f, "s")
    assert f.read_text() == "precious"


def test_results_folder_belongs_to_one_study(tmp_path):
    out = tmp_path / "R"
    claim_results(out, "A")
    assert read_marker(out)["study"] == "A"
    claim_results(out, "A")  # the same study again: fine
    with pytest.raises(OutputError, match="belongs to study 'A'.*--force"):
        claim_results(out, "B")
    assert read_marker(out)["study"] == "A"
    claim_results(out, "B", force=True)
    assert read_marker(out)["study"] == "B"


def test_results_folder_of_another_storage_is_refused(tmp_path):
    out = tmp_path / "R"
    claim_results(out, "A")  # its own study.db
    claim_results(out, "A", storage=str(out / "study.journal"))  # own storage of another kind: fine
    claim_results(tmp_path / "S", "A", storage="sqlite:////elsewhere/x.db")
    with pytest.raises(OutputError, match="storage"):
        claim_results(tmp_path / "S", "A", storage="sqlite:////elsewhere/y.db")


def test_earlier_versions_are_adopted_when_they_hold_the_same_study(tmp_path):
    old = tmp_path / "old"
    (old / "pareto").mkdir(parents=True)
    (old / "trials.jsonl").write_text("{}\n")
    (old / "pareto.md").write_text("# Pareto front of study A\n\n|x|\n")
    claim_results(old, "A")
    assert read_marker(old)["study"] == "A"
    other = tmp_path / "other"
    other.mkdir()
    (other / "pareto.md").write_text("# Pareto front of study B\n")
    with pytest.raises(OutputError, match="holds study 'B'"):
        claim_results(other, "A")
    assert not (other / MARKER).exists()
    unknown = tmp_path / "unknown"  # an earlier folder that names no study: adopted
    unknown.mkdir()
    (unknown / "trials.jsonl").write_text("")
    claim_results(unknown, "C")
    assert read_marker(unknown)["study"] == "C"


def test_claim_folder_never_overwrites_what_plsearch_did_not_write(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "a.png").write_bytes(b"the user's own")
    with pytest.raises(OutputError, match="a.png, which plsearch did not write"):
        claim_folder(out, "predict", targets=["a.png", "b.png"])
    assert (out / "a.png").read_bytes() == b"the user's own" and not (out / MARKER).exists()
    p = claim_folder(tmp_path / "P", "predict", targets=["a.png"])
    (p / "a.png").write_bytes(b"mask")
    record_written(p, ["a.png"])
    claim_folder(p, "predict", targets=["a.png"])  # its own file from the last run: may be replaced
    with pytest.raises(OutputError, match="is a predict folder"):
        claim_folder(p, "export", targets=["model.onnx"])
    claim_folder(out, "predict", targets=["a.png"], force=True)


def test_claim_folder_adopts_an_earlier_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: {}\n")
    (run / "log.jsonl").write_text("")
    claim_folder(run, "run", targets=["config.yaml", "log.jsonl"], adopt=("config.yaml", "last.pt"))
    assert read_marker(run)["kind"] == "run"


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "A", "b", "a_png", "x.y", "a_png_2"]),
            st.sampled_from([".png", ".jpg", ".PNG", ".tif", ""]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_unique_names_never_puts_two_outputs_on_one_name(parts):
    files = [f"in/{stem}{ext}" for stem, ext in parts]
    files += [f"other/{stem}{ext}" for stem, ext in parts[:2]]  # the same name in two folders
    names = unique_names(files)
    assert len(names) == len(files)
    assert len({n.lower() for n in names}) == len(names)  # also on case-insensitive file systems
    assert all(n.endswith(".png") and "/" not in n for n in names)


def test_unique_names_keeps_plain_stems_when_they_do_not_collide():
    assert unique_names(["x/a.png", "x/b.jpg"]) == ["a.png", "b.png"]
    assert unique_names(["x/a.png", "x/a.jpg"]) == ["a_png.png", "a_jpg.png"]


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "~root", "a\\b", "x\x00y", "/abs"])
def test_safe_child_refuses_names_that_leave_the_folder(tmp_path, name):
    with pytest.raises(OutputError):
        safe_child(tmp_path, name, what="study name")


def test_safe_child_keeps_plain_names_inside(tmp_path):
    assert safe_child(tmp_path, "ipl_epl.v2") == (tmp_path / "ipl_epl.v2").resolve()
