"""Opening an export for live use: each way a file can be wrong is one line naming the file and the fix."""

from pathlib import Path

import pytest

from latentlive.core.errors import UserError
from latentlive.live.model_file import load_module, metadata_fields, read_model_metadata


def test_an_export_of_the_right_kind_opens_with_its_methods(drums_ts: Path):
    assert read_model_metadata(drums_ts, "drums")["model"] == "drums"
    assert hasattr(load_module(drums_ts, ("decode",)), "decode")


def test_each_fault_is_one_line_naming_the_file_and_the_fix(drums_ts: Path, tmp_path: Path):
    broken = tmp_path / "broken.ts"
    broken.write_bytes(b"PK not a zip")
    faults = [
        (
            drums_ts,
            lambda: read_model_metadata(drums_ts, "band"),
            "a 'drums' model, not a band model; pass the band",
        ),
        (
            drums_ts,
            lambda: read_model_metadata(drums_ts, "grain", "pass --run with a grain run"),
            "with a grain run",
        ),
        (
            drums_ts,
            lambda: load_module(drums_ts, ("decode", "next_measure")),
            "has no next_measure; re-export",
        ),
        (broken, lambda: load_module(broken), "cannot load the TorchScript model"),
    ]
    for path, call, message in faults:
        with pytest.raises(UserError, match=message) as error:
            call()
        assert "\n" not in str(error.value) and str(error.value).startswith(f"{path}: ")
    with pytest.raises(UserError, match=r"incomplete band metadata \('voices'\); re-export it"):
        with metadata_fields(drums_ts, "band"):
            {}["voices"]
