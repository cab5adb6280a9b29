"""The page's memory savers (``memoryChanges`` in service/static/app.js) save memory: under a
pipeline ZeRO-3 keeps the stage gathered and its gradients whole in fp32
(service.core.memory.ZeroSharding), so there ZeRO-2 is the stage that holds the least."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from service.api.page import PAGE_DIR

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")


def memory_changes(setup: dict) -> dict:
    source = (PAGE_DIR / "app.js").read_text(encoding="utf-8")
    function = re.search(r"^function memoryChanges\(v\) \{.*?^\}$", source, re.S | re.M)
    assert function is not None
    script = f"{function.group(0)}\nconsole.log(JSON.stringify(memoryChanges({json.dumps(setup)})));"
    done = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


SETUP = {"finetune": "full", "flash_attention": True, "recompute": "full", "micro_batch_size": 1, "optimizer": "adamw",
         "offload_optimizer": False, "tp": 1, "dp": 4}  # fmt: skip


@pytest.mark.parametrize("zero_stage", [0, 1, 2, 3])
def test_under_a_pipeline_no_saver_asks_for_zero_3(zero_stage: int) -> None:
    changes = memory_changes(SETUP | {"pp": 2, "zero_stage": zero_stage})
    patches = [patch for _, patch in changes["singles"] + changes["combined"]]
    assert all(patch.get("zero_stage") in (None, 2) for patch in patches), patches
    assert any(patch.get("zero_stage") == 2 for patch in patches) == (zero_stage != 2)


def test_without_a_pipeline_zero_3_saves() -> None:
    changes = memory_changes(SETUP | {"pp": 1, "zero_stage": 1})
    assert {"zero_stage": 3} in [patch for _, patch in changes["singles"]]
