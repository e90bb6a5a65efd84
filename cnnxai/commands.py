"""The command-line tools, one zero-argument function each: the root scripts (``python GradLIME.py``) and the
commands ``pip install .`` puts on the PATH (``gradlime``, pyproject's ``[project.scripts]``) both call these, so
each tool has exactly one main. A function parses ``sys.argv``, runs the tool and returns its exit status.

The mains are imported when a command runs, so that a command loads only its own tool.
"""

from __future__ import annotations

import os
import sys


def program_name() -> str | None:
    """The name the tool was started by, for --help's usage line: ``GradLIME.py`` for ``python GradLIME.py``,
    ``gradlime`` for the installed command; None (the tool's own default) when started otherwise (``-c``)."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    name = name.removesuffix(".exe")  # the Windows launcher
    return None if name in ("", "-c", "-m", "__main__.py") else name


def gradlime() -> int:
    from cnnxai.cli import main

    return main("gradlime", prog=program_name())


def camlime() -> int:
    from cnnxai.cli import main

    return main("camlime", prog=program_name())


def faithfulness() -> int:
    from cnnxai.benchmark.cli import main

    return main("faithfulness", prog=program_name())


def complexity() -> int:
    from cnnxai.benchmark.cli import main

    return main("complexity", prog=program_name())


def stability() -> int:
    from cnnxai.stability.cli import main

    return main(prog=program_name())


def figures() -> int:
    from cnnxai.figures.cli import main

    return main(prog=program_name())


def localisation() -> int:
    from cnnxai.groundtruth.cli import main

    return main(prog=program_name())


def mnist1d() -> int:
    from cnnxai.signal1d.cli import main

    return main(prog=program_name())
