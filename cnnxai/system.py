"""(temporary: replaced by the allocator/threads module)"""

from __future__ import annotations

import torch


def process_record() -> dict:
    return {"torch_threads": torch.get_num_threads()}
