"""``explain``: the report's kind of answer from pasted ``nsys stats`` tables, as far as the tables allow.

Pure function: ``PastedText`` (from ``trace.pasted``) and op rules in, an ``Explanation`` out. It reuses what the
trace report uses: the op-mapping rules (``ops.classify``), the API-name patterns of ``phases``/``host``, the
finding catalogue (``findings.CATALOGUE``: ids, titles, actions) and the diagnosis (``diagnosis.conclude`` with
``FAMILY_ADVICE``). What a summary cannot show (tails, steps, idle time, whether a call sits inside the inference
loop) is said in ``cannot_tell``, with the capture that would answer it.

Modules: ``tables`` (which table answers what), ``sections``, ``findings``, ``cannot_tell``, ``answer``
(``Explanation``, ``explain``).
"""

from .answer import Explanation, explain
from .findings import tail_findings
from .sections import DIRECTION_WORDS
from .tables import short_name

__all__ = [
    "DIRECTION_WORDS",
    "Explanation",
    "explain",
    "short_name",
    "tail_findings",
]
