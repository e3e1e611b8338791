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
