import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Tests never touch the user's cache or the committed runs/.
_CACHE = Path(tempfile.gettempdir()) / "mtl-test-cache"
os.environ.setdefault("MTL_CACHE", str(_CACHE))
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_scenes():
    """A tiny rendered scenes bundle (cached across the session)."""
    from mtl.experiment import load_data
    return load_data("scenes", height=16, width=24, train_scenes=2, val_scenes=1, test_scenes=1, scans_per_scene=3)


@pytest.fixture(scope="session")
def tiny_mnist():
    from mtl.experiment import load_data
    return load_data("multimnist", n_train=64, n_val=32, n_test=32)


@pytest.fixture()
def tmp_out(tmp_path):
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def one_thread():
    """Two OpenMP threads on a shared 2-core machine stall for ~100× the work; one thread does not."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def scenes():
    """32×32 scenes with the NYUv2 task set (segmentation, depth, normal)."""
    from mtl.experiment import load_data
    data = load_data("scenes", height=32, width=32, train_scenes=2, val_scenes=1, test_scenes=1, scans_per_scene=2)
    return data.select(["segmentation", "depth", "normal"])


@pytest.fixture(scope="session")
def qm9_tensors():
    """The processed QM9 tensors, parsed from qm9pack's CSV at most once per session, then read from the disk cache."""
    pytest.importorskip("torch_geometric")
    if importlib.util.find_spec("qm9pack") is None:       # importing qm9pack itself needs pkg_resources
        pytest.skip("qm9pack is not installed (pip install 'mtl-imbalance[graph]')")
    from mtl.data import qm9

    data, _ = qm9.load_tensors()
    return data


PAGE_HEADER = """---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---

```{code-cell} ipython3
:tags: [parameters]

profile = "smoke"
out_dir = ""
progress = False
```

```{code-cell} ipython3
"""


@pytest.fixture()
def write_page():
    """``write(book, name, body)``: a minimal section page ``book/sections/<name>.md`` (jupytext MyST: the
    parameters cell of every page, then ``body`` as one code cell)."""
    def write(book: Path, name: str, body: str) -> Path:
        (book / "sections").mkdir(parents=True, exist_ok=True)
        path = book / "sections" / f"{name}.md"
        path.write_text(PAGE_HEADER + body + "\n```\n")
        return path
    return write
