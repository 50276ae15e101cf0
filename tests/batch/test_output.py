"""The output file: ids already done, a torn last line cut off, results written in input order."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerankd.batch.output import OrderedWriter, OutputError, read_done, restore_order


def line(key: str) -> str:
    return '{"id":' + key + ',"results":[]}'


def test_read_done_cuts_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    assert read_done(path) == set()
    path.write_text(line('"a"') + "\n" + line("2") + "\n" + '{"id":"c","resu', encoding="utf-8")
    assert read_done(path) == {'"a"', "2"}
    assert path.read_text(encoding="utf-8") == line('"a"') + "\n" + line("2") + "\n"


def test_an_output_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text("hello\n", encoding="utf-8")
    with pytest.raises(OutputError, match="line 1 is not a result of `rerankd batch`"):
        read_done(path)


def test_the_writer_keeps_input_order_and_skips_failures(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    writer = OrderedWriter(path, ["1", "2", "3", "4"])
    writer.put("3", line("3"))
    writer.put("2", None)  # failed
    assert path.read_text(encoding="utf-8") == ""
    writer.put("1", line("1"))
    assert path.read_text(encoding="utf-8") == line("1") + "\n" + line("3") + "\n"
    writer.put("4", line("4"))
    writer.close()
    assert writer.written == 3


def test_restore_order_after_a_rerun_appended_a_skipped_job(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text("".join(line(k) + "\n" for k in ["1", "3", "9", "2"]), encoding="utf-8")
    assert restore_order(path, ["1", "2", "3"])
    assert path.read_text(encoding="utf-8") == "".join(line(k) + "\n" for k in ["1", "2", "3", "9"])
    assert not restore_order(path, ["1", "2", "3"])
