"""What the image's bytes are: `invoke bench --image` lists the largest packages of /opt/venv and
the share of each kind of file (extension modules, bytecode, the rest), read inside the image
with its own Python (it has no shell)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from devstack.image.docker import Docker

_SCRIPT = """
import json, os
site = [os.path.join(r, d) for r, ds, _ in os.walk('/opt/venv/lib') for d in ds
        if d == 'site-packages'][0]
packages, kinds = {}, {'extension modules': 0, 'bytecode': 0, 'other': 0}
for root, _, files in os.walk('/opt/venv'):
    for name in files:
        path = os.path.join(root, name)
        if os.path.islink(path):
            continue
        size = os.path.getsize(path)
        top = os.path.relpath(path, site).split(os.sep)[0] if path.startswith(site) else 'bin'
        packages[top] = packages.get(top, 0) + size
        kind = ('extension modules' if '.so' in name else
                'bytecode' if name.endswith('.pyc') else 'other')
        kinds[kind] += size
print(json.dumps({'packages': packages, 'kinds': kinds}))
"""


@dataclass(frozen=True)
class VenvBreakdown:
    packages: list[tuple[int, str]]  # largest first
    kinds: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


def venv_breakdown(docker: Docker, image: str) -> VenvBreakdown:
    done = docker.run(["run", "--rm", "--entrypoint", "/opt/venv/bin/python", image, "-c", _SCRIPT])
    data = json.loads(done.stdout)
    packages = sorted(((size, name) for name, size in data["packages"].items()), reverse=True)
    return VenvBreakdown(packages, data["kinds"])
