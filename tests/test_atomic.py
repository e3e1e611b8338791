import json

import pytest

from stdpose.atomic import atomic_path, atomic_write_json


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out" / "result.json"
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_atomic_output_has_ordinary_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        target = tmp_path / "r.json"
        atomic_write_json(target, [1])
        assert target.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)
