"""The research subject: how a backbone is trained besides its own loss. `METHODS` names every method
(each registered backbone gets one model entry per row: `sasrec`, `sasrec-kd`, `sasrec-textinit`,
`sasrec-llmemb`); the objectives (`distill.py`, `alignment.py`) and the distillation targets
(`targets.py`, its `TARGETS` table) live beside them.

Adding a method = one file defining a `Method` (its config classes and setup) + one row here. This
package never imports the orchestration (suites, plans, records, tracking, the model registry).
"""

from __future__ import annotations

from benchmark.methods.base import PLAIN, Method
from benchmark.methods.kd import KD
from benchmark.methods.llmemb import LLMEMB
from benchmark.methods.textinit import TEXT_INIT

METHODS: dict[str | None, Method] = {  # None: the plain backbone; a name: the model entry `<backbone>-<name>`
    None: PLAIN,
    "kd": KD,
    "textinit": TEXT_INIT,
    "llmemb": LLMEMB,
}
