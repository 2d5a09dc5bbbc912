"""Write bash and zsh completion scripts (click's own) for every click program of
[project.scripts]: tutela, tutela-witness, the LifeKeeper and Serviceguard commands.

    python packaging/completions.py OUTDIR

Writes OUTDIR/bash/NAME (for /usr/share/bash-completion/completions) and OUTDIR/zsh/_NAME
(for /usr/share/zsh/vendor-completions). The scripts call the installed command back with
_NAME_COMPLETE set, so they hold no paths.
"""

from __future__ import annotations

import sys
from pathlib import Path

from click.shell_completion import get_completion_class
from programs import click_programs

TARGETS = {"bash": "{name}", "zsh": "_{name}"}


def write_completions(outdir: Path) -> list[Path]:
    written = []
    for shell, file_name in TARGETS.items():
        completion = get_completion_class(shell)
        assert completion is not None, f"click has no {shell} completion"
        (outdir / shell).mkdir(parents=True, exist_ok=True)
        for name, command in click_programs().items():
            variable = "_" + name.replace("-", "_").upper() + "_COMPLETE"
            path = outdir / shell / file_name.format(name=name)
            path.write_text(completion(command, {}, name, variable).source())
            written.append(path)
    return written


if __name__ == "__main__":
    for written_file in write_completions(Path(sys.argv[1])):
        print(written_file)
