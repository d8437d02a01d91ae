"""Progress output: plain lines when the output is not a terminal, a tqdm bar when it is."""

from __future__ import annotations

import io

import pytest

from plsearch.progress import mode_for, progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal(monkeypatch):
    monkeypatch.delenv("PLSEARCH_PROGRESS", raising=False)
    out = io.StringIO()
    assert mode_for(out) == "plain"
    seen = list(progress(range(5), desc="epochs", unit="epoch", file=out, interval_s=0.0))
    assert seen == [0, 1, 2, 3, 4]
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()  # no carriage-return redraws in a log
    assert lines[0].startswith("epochs: 0/5 epoch (0%)")
    assert lines[-1].startswith("epochs: 5/5 epoch (100%)") and lines[-1].endswith("done")
    assert [line.split()[1] for line in lines] == ["0/5", "1/5", "2/5", "3/5", "4/5", "5/5"]
    assert "left" in lines[2]


def test_plain_lines_are_rate_limited(monkeypatch):
    monkeypatch.delenv("PLSEARCH_PROGRESS", raising=False)
    out = io.StringIO()
    for _ in progress(range(1000), desc="steps", file=out, interval_s=3600):
        pass
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the start and the end, nothing between
    assert lines[-1].startswith("steps: 1000/1000 it")


def test_manual_use_postfix_write_and_unknown_total(monkeypatch):
    monkeypatch.delenv("PLSEARCH_PROGRESS", raising=False)
    out = io.StringIO()
    with progress(desc="trials", unit="trial", file=out, interval_s=0.0) as bar:
        bar.set_postfix(best=0.81234567, state="ok")
        bar.update(2)
        bar.write("trial 1 finished")
    text = out.getvalue()
    assert "trials: 2 trial" in text and "best=0.8123" in text and "state=ok" in text
    assert "trial 1 finished\n" in text
    assert text.rstrip().endswith("state=ok")


def test_break_closes_with_a_final_line(monkeypatch):
    monkeypatch.delenv("PLSEARCH_PROGRESS", raising=False)
    out = io.StringIO()
    for i in progress(range(10), desc="d", file=out, interval_s=3600):
        if i == 3:
            break
    assert out.getvalue().splitlines()[-1].startswith("d: 3/10 it (30%)")


def test_bar_on_a_terminal_and_env_override(monkeypatch):
    monkeypatch.delenv("PLSEARCH_PROGRESS", raising=False)
    tty = _Tty()
    assert mode_for(tty) == "bar"
    for _ in progress(range(3), desc="bar", file=tty):
        pass
    assert "\r" in tty.getvalue() and "3/3" in tty.getvalue()  # tqdm redraws in place
    monkeypatch.setenv("PLSEARCH_PROGRESS", "off")
    quiet = _Tty()
    assert list(progress(range(3), file=quiet)) == [0, 1, 2]
    assert quiet.getvalue() == ""
    monkeypatch.setenv("PLSEARCH_PROGRESS", "plain")
    assert mode_for(_Tty()) == "plain"


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="not one of"):
        progress(range(2), mode="fancy")


def test_inner_loops_print_only_periodic_lines(monkeypatch):
    monkeypatch.delenv("PLSEARCH_PROGRESS", raising=False)
    quick = io.StringIO()
    for _ in progress(range(50), desc="epoch 1", unit="step", file=quick, interval_s=3600, plain_ends=False):
        pass
    assert quick.getvalue() == ""  # a fast epoch says nothing: the epoch line says it all
    slow = io.StringIO()
    for _ in progress(range(3), desc="epoch 2", unit="step", file=slow, interval_s=0.0, plain_ends=False):
        pass
    lines = slow.getvalue().splitlines()
    assert lines[0].startswith("epoch 2: 1/3 step") and lines[-1].startswith("epoch 2: 3/3 step (100%)")


def test_heartbeat_prints_while_nothing_finishes_and_stops_on_close(monkeypatch):
    import time

    monkeypatch.delenv("PLSEARCH_PROGRESS", raising=False)
    out = io.StringIO()
    bar = progress(total=4, desc="references", unit="ref", file=out, interval_s=0.05, heartbeat=True, initial=1)
    time.sleep(0.3)  # one long item: no update, yet lines keep coming
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3 and all(line.startswith("references: 1/4 ref (25%)") for line in lines)
    bar.close()
    closed = out.getvalue()
    time.sleep(0.15)
    assert out.getvalue() == closed and closed.splitlines()[-1].endswith("done")  # the thread has stopped
    assert not bar._ticker.is_alive()


def test_write_to_another_file_prints_even_when_off(monkeypatch):
    monkeypatch.setenv("PLSEARCH_PROGRESS", "off")
    err, out = io.StringIO(), io.StringIO()
    bar = progress(total=2, desc="trials", file=err, heartbeat=True)
    bar.write("trial 0 ...", file=out)
    bar.write("note")
    bar.close()
    assert out.getvalue() == "trial 0 ...\n" and err.getvalue() == ""


def test_a_failed_loop_closes_without_its_final_line(monkeypatch):
    monkeypatch.delenv("PLSEARCH_PROGRESS", raising=False)
    out = io.StringIO()
    bar = progress(total=3, desc="references", file=out, interval_s=3600)
    bar.close(quiet=True)
    assert out.getvalue().splitlines() == ["references: 0/3 it (0%) 0.0s elapsed"]
